"""Condition, Fail and stubbed steps, retries and versions, run by the engine with an in-memory queue and S3.

The same behaviour over HTTP, driven by the SageMaker SDK, is in tests/integration/test_emulator_sdk.py; here
every condition type and operand kind is pinned down without a server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from callback_worker.emulator.arns import Partition
from callback_worker.emulator.engine import Engine
from callback_worker.emulator.errors import ConflictError, DefinitionError
from callback_worker.emulator.operations import Operations
from callback_worker.emulator.state import Execution, Store
from callback_worker.emulator.stubs import StubConfig

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


@dataclass
class MemoryQueue:
    """Every message body sent, parsed."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, queue_url: str, body: str) -> None:
        self.messages.append(json.loads(body))


@dataclass
class MemoryS3:
    """Objects by (bucket, key); a missing one is a LookupError, as the real reader raises."""

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)

    async def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        if (bucket, key) not in self.objects:
            raise LookupError(f"cannot read s3://{bucket}/{key}: NoSuchKey")
        return self.objects[(bucket, key)]


@dataclass
class Harness:
    engine: Engine
    operations: Operations
    queue: MemoryQueue
    s3: MemoryS3
    store: Store

    def create(self, steps: list[dict[str, Any]], **top: Any) -> str:
        name = f"p{uuid.uuid4().hex[:8]}"
        self.operations.create_pipeline(
            {
                "PipelineName": name,
                "PipelineDefinition": json.dumps({"Steps": steps, **top}),
                "RoleArn": "arn:aws:iam::123456789012:role/r",
                "ClientRequestToken": str(uuid.uuid4()),
            }
        )
        return name

    async def run(self, steps: list[dict[str, Any]], parameters: dict[str, str] | None = None, **top: Any) -> Execution:
        name = self.create(steps, **top)
        given = [{"Name": key, "Value": value} for key, value in (parameters or {}).items()]
        started = self.operations.start_pipeline_execution(
            {"PipelineName": name, "ClientRequestToken": str(uuid.uuid4()), "PipelineParameters": given}
        )
        await self.engine.wait_idle()
        return self.store.executions[started["PipelineExecutionArn"]]

    async def answer(self, execution: Execution, step: str, **outputs: str) -> None:
        self.operations.send_step_success(
            {
                "CallbackToken": execution.steps[step].token,
                "OutputParameters": [{"Name": key, "Value": value} for key, value in outputs.items()],
            }
        )
        await self.engine.wait_idle()


async def make_harness(stubs: StubConfig | None = None) -> Harness:
    store = Store()
    partition = Partition("us-east-1", "123456789012")
    queue, s3 = MemoryQueue(), MemoryS3()
    engine = Engine(store, partition, queue, stubs=stubs, reader=s3)
    return Harness(engine, Operations(store, engine, partition, reader=s3), queue, s3, store)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    built = await make_harness(StubConfig(enabled=True, delay=0.0, values={"Eval": STUB_VALUES}))
    yield built
    await built.engine.aclose()


STUB_VALUES: dict[str, Any] = {
    "PropertyFiles.Report": {"metrics": {"mse": {"value": 4.2}}, "tags": ["a", "b"]},
    "ModelArtifacts.S3ModelArtifacts": "s3://bucket/model.tar.gz",
}


def callback(name: str, outputs: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    declared = [{"OutputName": key, "OutputType": value} for key, value in (outputs or {}).items()]
    return {"Name": name, "Type": "Callback", "SqsQueueUrl": QUEUE, "OutputParameters": declared, **fields}


def gate(conditions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A Condition step 'Gate' whose branches are the callback steps 'Yes' and 'No'."""
    arguments = {"Conditions": conditions, "IfSteps": [callback("Yes")], "ElseSteps": [callback("No")]}
    return {"Name": "Gate", "Type": "Condition", "Arguments": arguments, **fields}


def out(step: str, name: str) -> dict[str, str]:
    return {"Get": f"Steps.{step}.OutputParameters['{name}']"}


PARAMETERS = [
    {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5},
    {"Name": "Count", "Type": "Integer", "DefaultValue": 3},
    {"Name": "Stage", "Type": "String", "DefaultValue": "dev"},
    {"Name": "Flag", "Type": "Boolean", "DefaultValue": True},
    {"Name": "Bucket", "Type": "String", "DefaultValue": "bucket"},
]
JSON_FROM_S3 = {
    "Std:JsonGet": {
        "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3:/", {"Get": "Parameters.Bucket"}, out("Score", "key")]}},
        "Path": "metrics[0].value",
    }
}
JSON_FROM_STUB = {
    "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "metrics.mse.value"}
}


@pytest.mark.parametrize(
    ("condition", "outcome"),
    [
        ({"Type": "Equals", "LeftValue": out("Score", "approved"), "RightValue": True}, True),
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 3.0}, True),
        ({"Type": "Equals", "LeftValue": {"Get": "Parameters.Stage"}, "RightValue": 3}, False),
        (
            {"Type": "GreaterThan", "LeftValue": out("Score", "score"), "RightValue": {"Get": "Parameters.Threshold"}},
            True,
        ),
        ({"Type": "GreaterThanOrEqualTo", "LeftValue": out("Score", "score"), "RightValue": 0.75}, True),
        ({"Type": "LessThan", "LeftValue": out("Score", "score"), "RightValue": 0.75}, False),
        ({"Type": "LessThanOrEqualTo", "LeftValue": JSON_FROM_STUB, "RightValue": 6.0}, True),
        ({"Type": "GreaterThan", "LeftValue": JSON_FROM_S3, "RightValue": 0.9}, True),
        ({"Type": "In", "QueryValue": {"Get": "Parameters.Stage"}, "Values": ["prod", "dev"]}, True),
        ({"Type": "In", "QueryValue": {"Get": "Execution.PipelineName"}, "Values": ["other"]}, False),
        (
            {
                "Type": "Equals",
                "LeftValue": {"Std:Join": {"On": "-", "Values": [{"Get": "Parameters.Stage"}, out("Score", "key")]}},
                "RightValue": "dev-report.json",
            },
            True,
        ),
        (
            {
                "Type": "Not",
                "Condition": {"Type": "Equals", "LeftValue": {"Get": "Parameters.Flag"}, "RightValue": True},
            },
            False,
        ),
        (
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "LessThan", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 1},
                    {"Type": "Equals", "LeftValue": out("Score", "approved"), "RightValue": True},
                ],
            },
            True,
        ),
    ],
)
async def test_each_condition_type_and_operand_kind_chooses_a_branch(
    harness: Harness, condition: dict[str, Any], outcome: bool
) -> None:
    harness.s3.objects[("bucket", "report.json")] = b'{"metrics": [{"value": 0.95}]}'
    score = callback("Score", {"approved": "Boolean", "score": "Float", "key": "String"})
    evaluation = {"Name": "Eval", "Type": "Processing", "Arguments": {}}
    execution = await harness.run([score, evaluation, gate([condition])], Parameters=PARAMETERS)
    await harness.answer(execution, "Score", approved="true", score="0.75", key="report.json")
    run = execution.steps["Gate"]
    assert (run.status, run.failure_reason) == ("Succeeded", None)
    assert run.metadata == {"Condition": {"Outcome": "True" if outcome else "False"}}
    taken, skipped = ("Yes", "No") if outcome else ("No", "Yes")
    assert taken in execution.steps
    assert skipped not in execution.steps
    await harness.answer(execution, taken)
    assert execution.status == "Succeeded"


async def test_every_condition_must_hold_and_nested_branches_follow_their_own_outcome(harness: Harness) -> None:
    inner = {
        "Name": "Inner",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.Stage"}, "RightValue": "dev"}],
            "IfSteps": [callback("DevOnly")],
            "ElseSteps": [callback("ProdOnly")],
        },
    }
    outer = {
        "Name": "Outer",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {"Type": "Equals", "LeftValue": 1, "RightValue": 1},
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 3},
            ],
            "IfSteps": [inner],
            "ElseSteps": [callback("Never")],
        },
    }
    after = callback("After", DependsOn=["DevOnly"])
    execution = await harness.run([outer, after], Parameters=PARAMETERS)
    assert set(execution.steps) == {"Outer", "Inner", "DevOnly"}
    await harness.answer(execution, "DevOnly")
    await harness.answer(execution, "After")
    assert execution.status == "Succeeded"
    assert [message["token"] for message in harness.queue.messages] == [
        execution.steps["DevOnly"].token,
        execution.steps["After"].token,
    ]


async def test_a_fail_step_fails_with_its_message_and_the_execution_with_the_services_reason(harness: Harness) -> None:
    message = {"Std:Join": {"On": " ", "Values": ["Rejected at stage", {"Get": "Parameters.Stage"}]}}
    fail = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": message}}
    execution = await harness.run([callback("A"), {**fail, "DependsOn": ["A"]}], Parameters=PARAMETERS)
    await harness.answer(execution, "A")
    assert execution.status == "Failed"
    assert execution.failure_reason == "Step failure: One or multiple steps failed."
    assert execution.steps["Stop"].failure_reason == "Rejected at stage dev"
    assert execution.steps["Stop"].metadata == {"Fail": {"ErrorMessage": "Rejected at stage dev"}}


async def test_ordering_values_of_different_kinds_fails_the_condition_step(harness: Harness) -> None:
    condition = {"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.Stage"}, "RightValue": 1}
    execution = await harness.run([gate([condition])], Parameters=PARAMETERS)
    run = execution.steps["Gate"]
    assert run.status == "Failed"
    assert run.failure_reason is not None
    assert "GreaterThan cannot compare 'dev' with 1" in run.failure_reason
    assert execution.status == "Failed"


async def test_a_json_document_missing_from_s3_fails_the_step_with_the_reason(harness: Harness) -> None:
    condition = {"Type": "Equals", "LeftValue": JSON_FROM_S3, "RightValue": 1}
    score = callback("Score", {"key": "String"})
    execution = await harness.run([score, gate([condition])], Parameters=PARAMETERS)
    await harness.answer(execution, "Score", key="missing.json")
    reason = execution.steps["Gate"].failure_reason
    assert reason is not None
    assert "s3://bucket/missing.json" in reason
    assert "NoSuchKey" in reason


async def test_a_stubbed_step_property_without_a_stub_value_fails_the_step_that_reads_it(harness: Harness) -> None:
    train = {"Name": "Train", "Type": "Training", "Arguments": {"RoleArn": "r"}}
    reader = callback("Register", Arguments={"model": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}})
    execution = await harness.run([train, reader])
    assert execution.steps["Train"].status == "Succeeded"
    assert execution.steps["Train"].metadata is not None
    assert "TrainingJob" in execution.steps["Train"].metadata
    reason = execution.steps["Register"].failure_reason
    assert reason is not None
    assert "Steps.Train.ModelArtifacts.S3ModelArtifacts has no value" in reason
    assert "stub values file" in reason
    assert harness.queue.messages == []


async def test_stubbed_step_properties_resolve_from_the_stub_values(harness: Harness) -> None:
    evaluation = {"Name": "Eval", "Type": "Processing", "Arguments": {}}
    reader = callback("Register", Arguments={"model": {"Get": "Steps.Eval.ModelArtifacts.S3ModelArtifacts"}})
    execution = await harness.run([evaluation, reader])
    assert execution.steps["Register"].status == "Executing"
    assert harness.queue.messages[0]["arguments"] == {"model": "s3://bucket/model.tar.gz"}


async def test_without_stubs_other_step_types_are_refused_naming_the_option() -> None:
    plain = await make_harness()
    with pytest.raises(DefinitionError) as raised:
        plain.create([{"Name": "Train", "Type": "Training", "Arguments": {}}])
    assert "step 'Train' has Type 'Training', which is not supported" in raised.value.message
    assert "--stub-steps" in raised.value.message


async def test_stopping_ends_stubbed_steps_at_once() -> None:
    slow = await make_harness(StubConfig(enabled=True, delay=30.0))
    name = slow.create([{"Name": "Train", "Type": "Training", "Arguments": {}}, callback("After", DependsOn=["Train"])])
    started = slow.operations.start_pipeline_execution({"PipelineName": name, "ClientRequestToken": "t" * 32})
    execution = slow.store.executions[started["PipelineExecutionArn"]]
    assert execution.steps["Train"].status == "Starting"
    slow.engine.stop(execution, "s" * 32)
    assert (execution.status, execution.steps["Train"].status) == ("Stopped", "Stopped")
    assert "After" not in execution.steps
    await slow.engine.aclose()


async def test_retry_reruns_failed_steps_only_for_a_failed_execution(harness: Harness) -> None:
    execution = await harness.run([callback("A"), callback("B", DependsOn=["A"])])
    with pytest.raises(ConflictError):
        harness.engine.retry(execution, "r" * 32, None)
    first_token = execution.steps["A"].token
    harness.operations.send_step_failure({"CallbackToken": first_token, "FailureReason": "flaky"})
    assert execution.status == "Failed"
    harness.engine.retry(execution, "r" * 32, None)
    await harness.engine.wait_idle()
    run = execution.steps["A"]
    assert (execution.status, run.status, run.attempt) == ("Executing", "Executing", 2)
    assert run.token != first_token
    assert [message["token"] for message in harness.queue.messages] == [first_token, run.token]
    await harness.answer(execution, "A")
    await harness.answer(execution, "B")
    assert execution.status == "Succeeded"


async def test_json_get_reads_json_text_from_a_callback_output(harness: Harness) -> None:
    document = {"Std:JsonGet": {"PropertyFile": out("Score", "report"), "Path": "checks[1].passed"}}
    condition = {"Type": "Equals", "LeftValue": document, "RightValue": True}
    execution = await harness.run([callback("Score", {"report": "String"}), gate([condition])])
    await harness.answer(execution, "Score", report='{"checks": [{"passed": false}, {"passed": true}]}')
    assert execution.steps["Gate"].metadata == {"Condition": {"Outcome": "True"}}


async def test_json_get_of_text_that_is_not_json_fails_the_step(harness: Harness) -> None:
    document = {"Std:JsonGet": {"PropertyFile": out("Score", "report"), "Path": "checks"}}
    execution = await harness.run(
        [callback("Score", {"report": "String"}), gate([{"Type": "Equals", "LeftValue": document, "RightValue": 1}])]
    )
    await harness.answer(execution, "Score", report="{not json")
    reason = execution.steps["Gate"].failure_reason
    assert reason is not None
    assert "Std:JsonGet: the document is not valid JSON" in reason
