"""What pipelines of the SageMaker Python SDK v3 need beyond v2, run by the engine without a server: the
``MlflowConfig`` key, every step type the SDKs write (ForEach with its control flow, the new stubbed types and the
properties the service fills), ``CacheConfig`` hits, selective executions and the service's FailureReason wording.

The same pipelines as the SDK writes them, over HTTP: tests/integration/test_emulator_sdk_v3_fixtures.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callback_worker.emulator.engine import EXECUTION_FAILURE_REASON
from callback_worker.emulator.errors import DefinitionError, ResourceNotFoundError, ValidationError
from callback_worker.emulator.state import Execution
from callback_worker.emulator.stubs import STUB_TYPES, StubConfig
from callback_worker.emulator.views import describe_execution, execution_step
from tests.unit.test_emulator_control_flow import Harness, callback, make_harness, out

MLFLOW = {
    "MlflowResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/t",
    "MlflowExperimentName": "e",
}


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    built = await make_harness(StubConfig(enabled=True, delay=0.0))
    yield built
    await built.engine.aclose()


async def start(harness: Harness, name: str, **params: Any) -> Execution:
    started = harness.operations.start_pipeline_execution(
        {"PipelineName": name, "ClientRequestToken": f"t-{len(harness.store.executions)}", **params}
    )
    await harness.engine.wait_idle()
    return harness.store.executions[started["PipelineExecutionArn"]]


def listed(execution: Execution) -> dict[str, dict[str, Any]]:
    return {run.spec.name: execution_step(run) for run in execution.steps.values()}


# --- the definition's top level -------------------------------------------------------------------------------


async def test_mlflow_config_null_or_set_is_accepted_and_reported_on_the_execution(harness: Harness) -> None:
    unset = await harness.run([callback("A")], MlflowConfig=None)
    assert "MLflowConfig" not in describe_execution(unset, "123456789012")
    named = harness.create([callback("A")], MlflowConfig=MLFLOW)
    execution = await start(harness, named)
    assert describe_execution(execution, "123456789012")["MLflowConfig"] == MLFLOW
    renamed = await start(harness, named, MlflowExperimentName="other")
    assert describe_execution(renamed, "123456789012")["MLflowConfig"]["MlflowExperimentName"] == "other"


@pytest.mark.parametrize("experiment", [{}, {"MlflowExperimentName": None}])
async def test_mlflow_config_may_name_the_resource_alone(harness: Harness, experiment: dict[str, None]) -> None:
    config = {"MlflowResourceArn": MLFLOW["MlflowResourceArn"], **experiment}
    execution = await start(harness, harness.create([callback("A")], MlflowConfig=config))
    assert describe_execution(execution, "123456789012")["MLflowConfig"] == {
        "MlflowResourceArn": MLFLOW["MlflowResourceArn"]
    }


async def test_mlflow_config_members_may_read_parameters(harness: Harness) -> None:
    config = {"MlflowResourceArn": "arn:x", "MlflowExperimentName": {"Get": "Parameters.Stage"}}
    parameters = [{"Name": "Stage", "Type": "String", "DefaultValue": "dev"}]
    execution = await harness.run([callback("A")], MlflowConfig=config, Parameters=parameters)
    assert execution.mlflow == {"MlflowResourceArn": "arn:x", "MlflowExperimentName": "dev"}


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ({"Triggers": []}, "the definition: unknown keys ['Triggers']"),
        ({"MlflowConfig": {"TrackingUri": "x"}}, "MlflowConfig: unknown keys ['TrackingUri']"),
        ({"MlflowConfig": "arn"}, "MlflowConfig: must be a JSON object"),
        (
            {"MlflowConfig": {**MLFLOW, "MlflowExperimentName": {"Get": "Steps.A.OutputParameters['x']"}}},
            "can read only parameters",
        ),
        ({"MlflowConfig": {}}, "MlflowConfig: MlflowResourceArn is required"),
        ({"MlflowConfig": {"MlflowExperimentName": "e"}}, "MlflowConfig: MlflowResourceArn is required"),
        ({"MlflowConfig": {**MLFLOW, "MlflowResourceArn": None}}, "for no MLflow tracking, MlflowConfig is null"),
    ],
)
async def test_unknown_keys_and_bad_mlflow_configs_are_still_refused(
    harness: Harness, top: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        harness.create([callback("A", {"x": "String"})], **top)
    assert message in raised.value.message


# --- FailureReason wording ------------------------------------------------------------------------------------


async def test_a_fail_step_keeps_its_message_and_the_execution_gets_the_services_reason(harness: Harness) -> None:
    execution = await harness.run([{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "bad model"}}])
    assert execution.failure_reason == "Step failure: One or multiple steps failed."
    assert listed(execution)["Stop"]["FailureReason"] == "bad model"


async def test_a_fail_step_without_a_message_has_no_failure_reason(harness: Harness) -> None:
    execution = await harness.run([{"Name": "Stop", "Type": "Fail", "Arguments": {}}])
    step = listed(execution)["Stop"]
    assert "FailureReason" not in step
    assert step["Metadata"] == {"Fail": {"ErrorMessage": ""}}
    assert execution.failure_reason == EXECUTION_FAILURE_REASON


async def test_a_failed_callback_step_keeps_its_reason(harness: Harness) -> None:
    execution = await harness.run([callback("A")])
    harness.operations.send_step_failure({"CallbackToken": execution.steps["A"].token, "FailureReason": "no GPU"})
    await harness.engine.wait_idle()
    assert (execution.failure_reason, execution.steps["A"].failure_reason) == (EXECUTION_FAILURE_REASON, "no GPU")


# --- stubbed step types and the properties the service fills ---------------------------------------------------


@pytest.mark.parametrize(
    "step_type", ["EMRServerless", "Endpoint", "EndpointConfig", "InferenceComponent", "Lineage", "Cleanup", "Job"]
)
async def test_the_step_types_the_sdks_write_run_as_stubs(harness: Harness, step_type: str) -> None:
    execution = await harness.run(
        [{"Name": "S", "Type": step_type, "Arguments": {}}, callback("After", DependsOn=["S"])]
    )
    step = listed(execution)["S"]
    assert step["StepStatus"] == "Succeeded"
    assert list(step["Metadata"]) == [STUB_TYPES[step_type].member]
    assert execution.steps["After"].status == "Executing"


async def test_job_names_arns_and_statuses_are_invented_without_stub_values(harness: Harness) -> None:
    train = {"Name": "Train", "Type": "Training", "Arguments": {}}
    endpoint = {"Name": "Serve", "Type": "Endpoint", "Arguments": {"EndpointName": "prod", "EndpointConfigName": "c"}}
    reads = {
        "job": {"Get": "Steps.Train.TrainingJobName"},
        "arn": {"Get": "Steps.Train.TrainingJobArn"},
        "status": {"Get": "Steps.Train.TrainingJobStatus"},
        "endpoint": {"Get": "Steps.Serve.EndpointName"},
        "endpoint_status": {"Get": "Steps.Serve.EndpointStatus"},
    }
    execution = await harness.run([train, endpoint, callback("Use", Arguments=reads)])
    arguments = harness.queue.messages[0]["arguments"]
    assert arguments["job"] == f"pipelines-{execution.id}-train"
    assert arguments["arn"] == listed(execution)["Train"]["Metadata"]["TrainingJob"]["Arn"]
    assert arguments["arn"].endswith(f":training-job/{arguments['job']}")
    assert (arguments["status"], arguments["endpoint"], arguments["endpoint_status"]) == (
        "Completed",
        "prod",
        "InService",
    )
    assert execution.steps["Serve"].metadata == {
        "Endpoint": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/prod"}
    }


async def test_the_refusal_in_stub_mode_names_what_can_run(harness: Harness) -> None:
    with pytest.raises(DefinitionError) as raised:
        harness.create([{"Name": "X", "Type": "Quantum", "Arguments": {}}])
    message = raised.value.message
    assert "'Callback', 'Condition', 'Fail' and 'ForEach'" in message
    assert all(repr(name) in message for name in ("Training", "EMRServerless", "Lineage", "Cleanup", "Job"))


# --- ForEach -------------------------------------------------------------------------------------------------


def for_each(body: list[dict[str, Any]], items: Any, concurrency: int = 2, **arguments: Any) -> dict[str, Any]:
    return {
        "Name": "Fan",
        "Type": "ForEach",
        "Arguments": {"IterableItems": items, "MaxConcurrency": concurrency, "ForEachBody": body, **arguments},
    }


ITEMS = [{"Name": "Items", "Type": "String", "DefaultValue": '["a", "b", "c"]'}]
SCORE = callback("Score", {"score": "Float"}, Arguments={"item": {"Get": "ForEach.CurrentItem"}})


async def answer_children(harness: Harness, execution: Execution, scores: dict[int, str]) -> None:
    for index, score in scores.items():
        await harness.answer(execution, f"Score-{index}", score=score)


async def test_for_each_runs_its_body_per_item_within_its_concurrency(harness: Harness) -> None:
    summarize = callback(
        "Summarize",
        Arguments={
            "count": {"Get": "Steps.Fan.SucceededStepCount"},
            "second": {"Get": "Steps.Fan.IterationOutputs[1].Score.OutputParameters['score']"},
        },
    )
    execution = await harness.run([for_each([SCORE], {"Get": "Parameters.Items"}), summarize], Parameters=ITEMS)
    assert [message["arguments"] for message in harness.queue.messages] == [{"item": "a"}, {"item": "b"}]
    assert execution.steps["Fan"].status == "Executing"
    await answer_children(harness, execution, {0: "0.5"})
    assert harness.queue.messages[2]["arguments"] == {"item": "c"}
    await answer_children(harness, execution, {1: "0.9", 2: "0.1"})
    assert harness.queue.messages[3]["arguments"] == {"count": 3, "second": 0.9}
    steps = listed(execution)
    assert steps["Score-2"]["IterationContext"] == {"ParentStepName": "Fan", "Index": 2, "Item": "c"}
    assert steps["Fan"]["StepStatus"] == "Succeeded"
    assert steps["Fan"]["Metadata"] == {
        "ForEach": {
            "InputItemCount": 3,
            "TotalStepCount": 3,
            "SucceededStepCount": 3,
            "FailedStepCount": 0,
            "StoppedStepCount": 0,
            "Status": "Succeeded",
        }
    }
    assert "Score" not in steps  # only its children are listed


async def test_a_failed_child_fails_the_for_each_step_after_the_others_and_a_retry_reruns_only_it(
    harness: Harness,
) -> None:
    execution = await harness.run([for_each([SCORE], ["a", "b"]), callback("After", DependsOn=["Fan"])])
    harness.operations.send_step_failure({"CallbackToken": execution.steps["Score-0"].token, "FailureReason": "bad"})
    await harness.engine.wait_idle()
    assert execution.status == "Executing"  # Score-1 still runs
    await answer_children(harness, execution, {1: "1"})
    assert execution.status == "Failed"
    assert execution.failure_reason == EXECUTION_FAILURE_REASON
    assert execution.steps["Fan"].failure_reason == "1 of 2 child steps did not succeed"
    assert listed(execution)["Fan"]["Metadata"]["ForEach"]["FailedStepCount"] == 1
    harness.operations.retry_pipeline_execution({"PipelineExecutionArn": execution.arn, "ClientRequestToken": "r1"})
    await harness.engine.wait_idle()
    assert (execution.steps["Score-0"].attempt, execution.steps["Score-1"].attempt) == (2, 1)
    await answer_children(harness, execution, {0: "2"})
    assert execution.steps["After"].status == "Executing"


async def test_stopping_stops_the_children_and_then_the_for_each_step(harness: Harness) -> None:
    execution = await harness.run([for_each([SCORE], ["a", "b", "c"], concurrency=1)])
    harness.operations.stop_pipeline_execution({"PipelineExecutionArn": execution.arn, "ClientRequestToken": "s"})
    await harness.engine.wait_idle()
    assert execution.steps["Fan"].status == "Stopping"
    await answer_children(harness, execution, {0: "1"})
    assert (execution.steps["Score-0"].status, execution.steps["Fan"].status, execution.status) == (
        "Stopped",
        "Stopped",
        "Stopped",
    )
    assert "Score-1" not in execution.steps


async def test_a_selector_picks_an_iteration_that_later_steps_read(harness: Harness) -> None:
    selector = {"Pick": "MaxBy", "Field": {"Get": "IterationOutput.Score.OutputParameters['score']"}}
    best = callback("Best", Arguments={"item": {"Get": "Steps.Fan.Selected.OutputParameters['score']"}})
    execution = await harness.run([for_each([SCORE], ["a", "b", "c"], concurrency=3, Selector=selector), best])
    await answer_children(harness, execution, {0: "0.2", 1: "0.7", 2: "0.7"})
    assert listed(execution)["Fan"]["Metadata"]["ForEach"]["Selector"] == {"StepName": "Score", "Index": 1}
    assert harness.queue.messages[-1]["arguments"] == {"item": 0.7}


async def test_body_steps_read_item_fields_and_their_iteration_siblings(harness: Harness) -> None:
    prepare = callback("Prepare", {"uri": "String"}, Arguments={"name": {"Get": "ForEach.CurrentItem.name"}})
    train = {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {"Input": out("Prepare", "uri"), "Size": {"Get": "ForEach.CurrentItem['size']"}},
    }
    items = ['{"name": "small", "size": 1}', '{"name": "large", "size": 9}']
    execution = await harness.run([for_each([prepare, train], items, concurrency=4)])
    assert [message["arguments"] for message in harness.queue.messages] == [{"name": "small"}, {"name": "large"}]
    assert "Train-0" not in execution.steps
    await harness.answer(execution, "Prepare-1", uri="s3://b/large")
    assert execution.steps["Train-1"].status == "Succeeded"
    assert execution.steps["Train-1"].arguments == {"Arguments": {"Input": "s3://b/large", "Size": 9}}


async def test_items_that_are_not_a_list_fail_the_for_each_step(harness: Harness) -> None:
    parameters = [{"Name": "Items", "Type": "String", "DefaultValue": "not json"}]
    execution = await harness.run([for_each([SCORE], {"Get": "Parameters.Items"})], Parameters=parameters)
    assert execution.steps["Fan"].status == "Failed"
    assert "is not a JSON list" in (execution.steps["Fan"].failure_reason or "")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (for_each([{"Name": "F", "Type": "Fail", "Arguments": {}}], ["a"]), "a Fail step cannot be in a ForEach body"),
        (
            for_each([SCORE], "a,b"),
            "must be a property reference, such as a parameter or a step's output, resolving to a JSON list at run "
            "time, as the service requires; a literal value cannot resolve to a list (got 'a,b')",
        ),
        (
            for_each([SCORE], []),
            "Arguments.IterableItems: a literal list must hold 1 to 100 items, not 0 (the service takes only a "
            "property reference",
        ),
        (for_each([SCORE], ["a"] * 101), "a literal list must hold 1 to 100 items, not 101"),
        (for_each([SCORE], ["a"], concurrency=51), "MaxConcurrency: must be an integer from 1 to 50"),
        (callback("A", Arguments={"x": {"Get": "ForEach.CurrentItem"}}), "can be read only by a ForEach body step"),
        (for_each([SCORE], ["a"], Selector={"Pick": "MaxBy", "Field": {"Get": "IterationOutput.Other.x"}}), "Selector"),
    ],
)
async def test_for_each_definitions_are_checked(harness: Harness, step: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        harness.create([step])
    assert message in raised.value.message


async def test_a_step_named_like_a_child_step_is_refused(harness: Harness) -> None:
    with pytest.raises(DefinitionError, match="ForEach body step's child"):
        harness.create([for_each([SCORE], ["a"]), callback("Score-0")])


# --- CacheConfig ---------------------------------------------------------------------------------------------


def cached_training(size: int, expire_after: str = "PT1H") -> dict[str, Any]:
    cache = {"Enabled": True, "ExpireAfter": expire_after}
    return {"Name": "Train", "Type": "Training", "Arguments": {"Size": size}, "CacheConfig": cache}


async def test_a_cached_step_type_reuses_the_latest_matching_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = harness.create([cached_training(1), callback("After", DependsOn=["Train"])])
    first = await start(harness, name)
    second = await start(harness, name)
    hit = listed(second)["Train"]
    assert hit["CacheHitResult"] == {"SourcePipelineExecutionArn": first.arn}
    assert hit["Metadata"] == listed(first)["Train"]["Metadata"]
    assert second.steps["After"].status == "Executing"
    clock = harness.engine.clock
    monkeypatch.setattr(harness.engine, "clock", lambda: clock() + 7200)
    third = await start(harness, name)
    assert "CacheHitResult" not in listed(third)["Train"]  # both earlier runs are older than an hour


async def test_a_change_of_arguments_or_a_disabled_cache_misses(harness: Harness) -> None:
    name = harness.create([cached_training(1)])
    await start(harness, name)
    harness.operations._versions.update_pipeline(
        {"PipelineName": name, "PipelineDefinition": json.dumps({"Steps": [cached_training(2)]})}
    )
    changed = await start(harness, name)
    assert changed.steps["Train"].cache_source is None
    disabled = harness.create([{**cached_training(1), "CacheConfig": {"Enabled": False}}])
    await start(harness, disabled)
    assert (await start(harness, disabled)).steps["Train"].cache_source is None


async def test_callback_steps_are_never_cached(harness: Harness) -> None:
    name = harness.create([callback("A", CacheConfig={"Enabled": True, "ExpireAfter": "P30D"})])
    first = await start(harness, name)
    await harness.answer(first, "A")
    second = await start(harness, name)
    assert second.steps["A"].status == "Executing"


async def test_expire_after_must_be_a_duration(harness: Harness) -> None:
    with pytest.raises(DefinitionError, match="not an ISO 8601 duration"):
        harness.create([cached_training(1, expire_after="one hour")])


# --- SelectiveExecutionConfig --------------------------------------------------------------------------------

CHAIN = [
    callback("A", {"n": "Integer"}),
    callback("B", {"m": "Integer"}, Arguments={"n": out("A", "n")}),
    callback("C", Arguments={"m": out("B", "m")}),
]


async def finished_chain(harness: Harness) -> tuple[str, Execution]:
    name = harness.create(CHAIN)
    source = await start(harness, name)
    await harness.answer(source, "A", n="7")
    await harness.answer(source, "B", m="8")
    await harness.answer(source, "C")
    return name, source


def selective(source: Execution | None, *steps: str) -> dict[str, Any]:
    config: dict[str, Any] = {"SelectedSteps": [{"StepName": step} for step in steps]}
    if source is not None:
        config["SourcePipelineExecutionArn"] = source.arn
    return {"SelectiveExecutionConfig": config}


async def test_a_selective_execution_runs_the_selected_steps_on_the_source_executions_outputs(harness: Harness) -> None:
    name, source = await finished_chain(harness)
    execution = await start(harness, name, **selective(source, "B"))
    steps = listed(execution)
    assert steps["A"]["SelectiveExecutionResult"] == {"SourcePipelineExecutionArn": source.arn}
    assert steps["A"]["StepStatus"] == "Succeeded"
    assert harness.queue.messages[-1]["arguments"] == {"n": 7}
    await harness.answer(execution, "B", m="1")
    assert execution.status == "Succeeded"  # C, after the selected step, does not run
    assert set(execution.steps) == {"A", "B"}
    assert (
        describe_execution(execution, "123456789012")["SelectiveExecutionConfig"]
        == selective(source, "B")["SelectiveExecutionConfig"]
    )


@pytest.mark.parametrize(
    ("steps", "with_source", "message"),
    [
        (("Z",), True, "step 'Z' is not a step of the pipeline"),
        (("B",), False, "SourcePipelineExecutionArn is required"),
        (("A", "C"), True, "step 'B' lies between selected steps"),
    ],
)
async def test_selective_executions_are_checked(
    harness: Harness, steps: tuple[str, ...], with_source: bool, message: str
) -> None:
    name, source = await finished_chain(harness)
    with pytest.raises(ValidationError) as raised:
        await start(harness, name, **selective(source if with_source else None, *steps))
    assert message in raised.value.message


async def test_the_source_must_be_a_finished_execution_of_the_pipeline(harness: Harness) -> None:
    name, _ = await finished_chain(harness)
    running = await start(harness, name)
    with pytest.raises(ValidationError, match="it must be Succeeded or Failed"):
        await start(harness, name, **selective(running, "B"))
    other = await harness.run(CHAIN)
    with pytest.raises(ValidationError, match="is not an execution of pipeline"):
        await start(harness, name, **selective(other, "B"))
    unknown = {"SelectedSteps": [{"StepName": "B"}], "SourcePipelineExecutionArn": f"{running.arn[:-3]}zzz"}
    with pytest.raises(ResourceNotFoundError):
        await start(harness, name, SelectiveExecutionConfig=unknown)
