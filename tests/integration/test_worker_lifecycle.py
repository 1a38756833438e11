"""Leases, durable Retry continuations across a restart, Stopping, malformed input and injected throttling."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest

from callback_worker.config.limits import MAX_VISIBILITY_SECONDS
from callback_worker.emulator.faults import FaultConfig, OperationFaults
from callback_worker.emulator.server import EmulatorServer
from callback_worker.handlers.echo import EchoHandler
from callback_worker.worker.handler import CallbackContext, JSONValue, Retry
from callback_worker.worker.queue import ReceivedMessage
from tests.integration.conftest import QueueFactory
from tests.worker_harness import (
    create_pipeline,
    one_step_definition,
    outputs_of,
    queue_depth,
    running_worker,
    step_of,
    wait_for_status,
    worker_settings,
)


async def start(sagemaker: Any, pipeline: str) -> str:
    return str((await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"])


async def test_a_handler_three_times_longer_than_the_visibility_timeout_runs_once(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    runs: list[str] = []

    async def slow(context: CallbackContext) -> dict[str, str]:
        runs.append(context.message_id)
        await asyncio.sleep(9)
        return {"done": "yes"}

    queue_url, _ = await make_queue()
    definition = one_step_definition(queue_url, outputs=[{"OutputName": "done", "OutputType": "String"}])
    pipeline = await create_pipeline(sagemaker, definition)
    async with running_worker(worker_settings(queue_url, handler="slow", visibility_timeout=3), {"slow": slow}) as w:
        arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, arn, within=30) == "Succeeded"
        renewals = w.tally["lease_renewals"]
        received = w.tally["received"]
    assert len(runs) == 1
    assert received == 1
    assert renewals >= 3
    assert outputs_of(await step_of(sagemaker, arn)) == {"done": "yes"}
    assert await queue_depth(sqs, queue_url) == 0


async def test_retry_continuations_carry_state_across_a_restart_and_never_reach_the_dlq(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    seen: list[JSONValue] = []
    third_call = asyncio.Event()

    def poll(context: CallbackContext) -> dict[str, int] | Retry:
        seen.append(context.state)
        count = context.state["count"] if isinstance(context.state, dict) else 0
        assert isinstance(count, int)
        if count == 2:
            third_call.set()
        if count < 5:
            return Retry(delay=1, state={"count": count + 1, "history": [*range(count + 1)]})
        return {"count": count}

    queue_url, dlq_url = await make_queue(max_receive_count=2)
    definition = one_step_definition(queue_url, outputs=[{"OutputName": "count", "OutputType": "Integer"}])
    pipeline = await create_pipeline(sagemaker, definition)
    settings = worker_settings(queue_url, handler="poll")
    async with running_worker(settings, {"poll": poll}):
        arn = await start(sagemaker, pipeline)
        await asyncio.wait_for(third_call.wait(), timeout=30)
    # The first worker is gone; its continuation waits in the queue for the next one.
    assert await wait_for_status(sagemaker, arn, frozenset({"Executing"})) == "Executing"
    async with running_worker(settings, {"poll": poll}):
        assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
    assert seen[0] is None
    assert [state["count"] for state in seen[1:] if isinstance(state, dict)] == [1, 2, 3, 4, 5]
    assert seen[-1] == {"count": 5, "history": [0, 1, 2, 3, 4]}
    assert outputs_of(await step_of(sagemaker, arn)) == {"count": "5"}
    assert await queue_depth(sqs, dlq_url) == 0
    assert await queue_depth(sqs, queue_url) == 0


async def test_retry_longer_than_the_sqs_delay_limit_is_requeued_in_hops(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    calls: list[int] = []

    def wait_long(context: CallbackContext) -> Retry:
        calls.append(context.continuations)
        return Retry(delay=3600, state="waiting")

    async with running_worker(worker_settings(queue_url, handler="wait"), {"wait": wait_long}) as worker:
        await start(sagemaker, pipeline)
        async with asyncio.timeout(15):
            while worker.tally["continued"] == 0:
                await asyncio.sleep(0.1)
    response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert response["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert calls == [0]


async def test_stopping_cancels_the_running_handler_and_stops_the_execution(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    started = asyncio.Event()
    events: list[str] = []

    class Waiter:
        async def __call__(self, context: CallbackContext) -> dict[str, str]:
            started.set()
            try:
                await asyncio.sleep(600)
            except asyncio.CancelledError:
                events.append("cancelled")
                raise
            return {}

        def on_stop(self, context: CallbackContext) -> None:
            events.append(f"stop hook {context.execution_id}")

    queue_url, dlq_url = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    async with running_worker(worker_settings(queue_url, handler="wait"), {"wait": Waiter()}):
        arn = await start(sagemaker, pipeline)
        await asyncio.wait_for(started.wait(), timeout=15)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn)
        assert await wait_for_status(sagemaker, arn, within=10) == "Stopped"
    execution_id = arn.rsplit("/", 1)[-1]
    assert events == ["cancelled", f"stop hook {execution_id}"]
    assert (await step_of(sagemaker, arn))["StepStatus"] == "Stopped"
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0


async def test_malformed_messages_never_stop_the_worker(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, loop_emulator: EmulatorServer
) -> None:
    capture_url, _ = await make_queue()
    queue_url, dlq_url = await make_queue(max_receive_count=1)
    # A real token, captured from a queue the worker does not read, then sent on with broken content.
    capture = await create_pipeline(sagemaker, one_step_definition(capture_url))
    broken_arn = await start(sagemaker, capture)
    captured = (await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=5))["Messages"][0]
    body = json.loads(captured["Body"])
    body["arguments"] = ["not", "an", "object"]
    tokenless = ["not json at all", "[1, 2, 3]", json.dumps({"token": "short", "arguments": {}}), "{" * 5000]
    for text in [json.dumps(body), *tokenless]:
        await sqs.send_message(QueueUrl=queue_url, MessageBody=text)
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"ok": 1}))
    async with running_worker(worker_settings(queue_url, visibility_timeout=3), {"echo": EchoHandler()}) as worker:
        assert await wait_for_status(sagemaker, broken_arn) == "Failed"
        good_arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, good_arn) == "Succeeded"
        async with asyncio.timeout(30):  # tokenless ones reappear after the visibility timeout, then redrive
            while await queue_depth(sqs, dlq_url) < len(tokenless):
                await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, VisibilityTimeout=0)
                await asyncio.sleep(0.5)
        malformed = worker.tally["malformed"]
    reason = (await step_of(sagemaker, broken_arn))["FailureReason"]
    assert reason.startswith("Malformed callback message")
    assert "'arguments' is list" in reason
    assert malformed >= len(tokenless) + 1
    assert await queue_depth(sqs, dlq_url) == len(tokenless)


async def test_injected_throttling_delays_but_never_loses_or_doubles_an_outcome(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, loop_emulator: EmulatorServer
) -> None:
    throttled = OperationFaults(throttle=0.2)
    loop_emulator.faults = FaultConfig(
        operations={"SendPipelineExecutionStepSuccess": throttled, "SendPipelineExecutionStepFailure": throttled},
        seed=7,
    )
    queue_url, dlq_url = await make_queue()
    definition = one_step_definition(queue_url, {"n": 1}, [{"OutputName": "n", "OutputType": "Integer"}])
    pipeline = await create_pipeline(sagemaker, definition)
    async with running_worker(worker_settings(queue_url, concurrency=10), {"echo": EchoHandler()}) as worker:
        arns = []
        for _ in range(4):
            wave = [await start(sagemaker, pipeline) for _ in range(10)]
            arns.extend(wave)
            await asyncio.gather(*(wait_for_status(sagemaker, arn) for arn in wave))
        statuses = await asyncio.gather(*(wait_for_status(sagemaker, arn) for arn in arns))
        stats = dict(worker.tally)
    assert set(statuses) == {"Succeeded"}
    assert loop_emulator.injector.injected("SendPipelineExecutionStepSuccess", "throttle") > 0
    assert stats.get("failure", 0) == 0
    assert stats["success"] + stats.get("already_done", 0) == len(arns)
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0


async def test_a_handler_reaching_the_12_hour_visibility_cap_is_cancelled_and_answered(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    cancelled = asyncio.Event()

    async def endless(context: CallbackContext) -> dict[str, str]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    arn = await start(sagemaker, pipeline)
    raw = (
        await sqs.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=5, VisibilityTimeout=3, MessageSystemAttributeNames=["All"]
        )
    )["Messages"][0]
    # This receipt is pretended to be almost 12 hours old (SQS handed it out that long before the receive returned):
    # 5 seconds of budget are left.
    received = dataclasses.replace(ReceivedMessage.from_api(raw, time.time()), round_trip=MAX_VISIBILITY_SECONDS - 5)
    settings = worker_settings(queue_url, handler="endless", visibility_timeout=3)
    async with running_worker(settings, {"endless": endless}) as worker:
        handling = asyncio.create_task(worker.dispatcher.handle(received))
        assert await wait_for_status(sagemaker, arn, within=20) == "Failed"
        await handling
    assert cancelled.is_set()
    assert "12.0 h on one SQS receipt" in (await step_of(sagemaker, arn))["FailureReason"]
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_slot_takes_the_next_message_while_the_last_one_is_still_being_deleted(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    settings = worker_settings(queue_url, concurrency=1)
    deletes_may_finish = asyncio.Event()
    held: list[str] = []
    async with running_worker(settings, {"echo": EchoHandler()}) as worker:
        delete = worker.queue.delete

        async def held_delete(receipt_handle: str) -> None:
            held.append(receipt_handle)
            await deletes_may_finish.wait()
            await delete(receipt_handle)

        monkeypatch.setattr(worker.queue, "delete", held_delete)
        arns = [await start(sagemaker, pipeline) for _ in range(3)]
        for arn in arns:
            assert await wait_for_status(sagemaker, arn, within=30) == "Succeeded"
        assert len(held) == 3  # all three answered by one slot, none of them deleted yet
        deletes_may_finish.set()
        async with asyncio.timeout(30):
            while await queue_depth(sqs, queue_url):
                await asyncio.sleep(0.2)
        answered = worker.tally["success"]
    assert answered == 3
