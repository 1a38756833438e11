"""Engine timing cases that the HTTP tests cannot pin down: answers and stops racing the message delivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from callback_worker.emulator.arns import Partition
from callback_worker.emulator.context import check_outputs
from callback_worker.emulator.definition import parse_definition
from callback_worker.emulator.engine import Engine
from callback_worker.emulator.operations import Operations
from callback_worker.emulator.state import Execution, StepRun, Store

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


@dataclass
class GatedSender:
    """Records every message; holds each send until ``gate`` is set; refuses queues listed in ``refuse``."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    messages: list[dict[str, Any]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def send(self, queue_url: str, body: str) -> None:
        await self.gate.wait()
        if queue_url in self.refuse:
            raise ConnectionError(f"queue {queue_url} refused the message")
        self.messages.append(json.loads(body))


@dataclass
class Harness:
    engine: Engine
    operations: Operations
    sender: GatedSender
    store: Store

    def run(self, steps: list[dict[str, Any]], **top: Any) -> Execution:
        name = f"p{uuid.uuid4().hex[:8]}"
        document = {"Version": "2020-12-01", "Steps": steps, **top}
        self.operations.create_pipeline(
            {
                "PipelineName": name,
                "PipelineDefinition": json.dumps(document),
                "RoleArn": "arn:aws:iam::123456789012:role/r",
                "ClientRequestToken": str(uuid.uuid4()),
            }
        )
        started = self.operations.start_pipeline_execution(
            {"PipelineName": name, "ClientRequestToken": str(uuid.uuid4())}
        )
        return self.store.executions[started["PipelineExecutionArn"]]

    def answer(self, run: StepRun, outputs: dict[str, str] | None = None) -> None:
        self.operations.send_step_success(
            {
                "CallbackToken": run.token,
                "OutputParameters": [{"Name": k, "Value": v} for k, v in (outputs or {}).items()],
            }
        )

    def fail(self, run: StepRun, reason: str) -> None:
        self.operations.send_step_failure({"CallbackToken": run.token, "FailureReason": reason})


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    store = Store()
    partition = Partition("us-east-1", "123456789012")
    sender = GatedSender()
    engine = Engine(store, partition, sender)
    yield Harness(engine, Operations(store, engine, partition), sender, store)
    await engine.aclose()


def callback(name: str, **fields: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "Callback", "SqsQueueUrl": QUEUE, **fields}


async def test_a_stop_during_delivery_sends_stopping_after_executing(harness: Harness) -> None:
    execution = harness.run([callback("A", Arguments={"x": 1})])
    run = execution.steps["A"]
    assert run.status == "Starting"
    harness.engine.stop(execution, "s" * 32)
    assert (execution.status, run.status) == ("Stopping", "Stopping")
    harness.sender.gate.set()
    await harness.engine.wait_idle()
    assert [message["status"] for message in harness.sender.messages] == ["Executing", "Stopping"]
    assert harness.sender.messages[0]["token"] == harness.sender.messages[1]["token"] == run.token
    harness.answer(run)
    assert (execution.status, run.status) == ("Stopped", "Stopped")


async def test_a_stop_whose_first_message_was_refused_ends_the_step(harness: Harness) -> None:
    harness.sender.refuse.add("https://refusing.example/q")
    execution = harness.run([callback("A", SqsQueueUrl="https://refusing.example/q")])
    harness.engine.stop(execution, "s" * 32)
    harness.sender.gate.set()
    await harness.engine.wait_idle()
    assert (execution.status, execution.steps["A"].status) == ("Stopped", "Stopped")
    assert harness.engine.sent == []
    assert "refused the message" in harness.engine.send_failures[0][1]


async def test_an_answer_that_overtakes_the_delivery_is_kept(harness: Harness) -> None:
    execution = harness.run([callback("A")])
    run = execution.steps["A"]
    harness.answer(run)
    harness.sender.gate.set()
    await harness.engine.wait_idle()
    assert (execution.status, run.status) == ("Succeeded", "Succeeded")


async def test_after_a_failure_running_steps_finish_and_nothing_new_starts(harness: Harness) -> None:
    harness.sender.gate.set()
    execution = harness.run([callback("A"), callback("B"), callback("C", DependsOn=["A", "B"])])
    await harness.engine.wait_idle()
    harness.fail(execution.steps["A"], "broken")
    assert execution.status == "Executing"
    harness.answer(execution.steps["B"])
    assert execution.status == "Failed"
    assert execution.failure_reason == "Step failure: One or multiple steps failed."
    assert execution.steps["A"].failure_reason == "broken"
    assert set(execution.steps) == {"A", "B"}


async def test_two_failures_keep_their_own_reasons(harness: Harness) -> None:
    harness.sender.gate.set()
    execution = harness.run([callback("A"), callback("B")])
    await harness.engine.wait_idle()
    harness.fail(execution.steps["B"], "first")
    harness.fail(execution.steps["A"], "second")
    assert execution.failure_reason == "Step failure: One or multiple steps failed."
    assert (execution.steps["B"].failure_reason, execution.steps["A"].failure_reason) == ("first", "second")


async def test_a_value_that_cannot_be_resolved_fails_the_step(harness: Harness) -> None:
    harness.sender.gate.set()
    steps = [callback("A", Arguments={"experiment": {"Get": "PipelineExperimentConfig.ExperimentName"}})]
    execution = harness.run(steps, PipelineExperimentConfig=None)
    run = execution.steps["A"]
    assert run.status == "Failed"
    assert run.failure_reason is not None
    assert run.failure_reason.startswith("Could not resolve the step's arguments")
    assert execution.status == "Failed"
    assert harness.sender.messages == []


def test_outputs_are_typed_by_their_declaration() -> None:
    spec_document = {
        "Version": "2020-12-01",
        "Steps": [
            callback(
                "A",
                OutputParameters=[
                    {"OutputName": "n", "OutputType": "Integer"},
                    {"OutputName": "ok", "OutputType": "Boolean"},
                    {"OutputName": "gone", "OutputType": "Float"},
                ],
            )
        ],
    }
    step = parse_definition(json.dumps(spec_document)).step("A")
    typed, problems = check_outputs(
        step, [{"Name": "n", "Value": "x"}, {"Name": "ok", "Value": "True"}, {"Name": "free", "Value": "1"}]
    )
    assert typed == {"ok": True}
    # A declared output left out ('gone') is no problem: the step succeeds without it.
    assert problems == ["output parameter 'n': 'x' is not a valid Integer"]
