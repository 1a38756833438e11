"""Defect 5 — Stopping races: a stopped step never starts (or keeps) a handler, and its stop hook sees the state.

Before: (a) a Stopping message handled while the Executing copy was still in its step look-up found nothing
running, so the handler started after ``on_stop`` had run; (b) "answered" lived only in one replica's memory, so a
``Retry`` continuation of a stopped step woken by another (or a restarted) replica looped for ever; (c) ``on_stop``
never saw the continuation's state; (d) a step answered elsewhere left this replica's handler running to a
``ConflictException``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from callback_worker.worker.handler import CallbackContext, Retry
from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import Chain, start_one, until
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, wait_for_status, worker_settings


class Recorder:
    """A handler that runs until cancelled, recording its calls, its cancellation and its stop hook."""

    def __init__(self) -> None:
        self.calls: list[CallbackContext] = []
        self.cancelled = asyncio.Event()
        self.stops: list[CallbackContext] = []

    async def __call__(self, context: CallbackContext) -> dict[str, str]:
        self.calls.append(context)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {}

    async def on_stop(self, context: CallbackContext) -> None:
        self.stops.append(context)


async def test_a_stop_arriving_during_the_step_look_up_keeps_the_handler_from_starting(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sagemaker_faults: FaultProxy
) -> None:
    handler = Recorder()
    looking_up = asyncio.Event()

    def first_listing(_: dict[str, Any]) -> bool:
        looking_up.set()
        return True

    sagemaker_faults.add(Rule("ListPipelineExecutionSteps", "slow", delay=3.0, when=first_listing))
    queue_url, _ = await make_queue()
    settings = worker_settings(queue_url, handler="h", step_context=True)
    async with running_worker(settings, {"h": handler}):
        arn = await start_one(sagemaker, queue_url)
        await asyncio.wait_for(looking_up.wait(), timeout=20)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)
        assert await wait_for_status(sagemaker, arn, within=30) == "Stopped"
        await until(lambda: sagemaker_faults.count("ListPipelineExecutionSteps") >= 1)
        await asyncio.sleep(1.0)  # time for a handler that would start after the look-up
    assert handler.calls == []
    assert len(handler.stops) == 1
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_continuation_of_a_stopped_step_woken_by_a_new_replica_stops_with_its_state(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    # Re-queues itself for ever, each link due 4 s after the last: the link waiting at the stop is due after the
    # first replica has shut down, so that the next replica (and not the first) wakes it.
    chain = Chain(links=1_000, delay=4.0)
    queue_url, _ = await make_queue()
    settings = worker_settings(queue_url, handler="chain", visibility_timeout=3)
    async with running_worker(settings, {"chain": chain}):
        arn = await start_one(sagemaker, queue_url)
        await until(lambda: len(chain.calls) >= 2)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)
        assert await wait_for_status(sagemaker, arn, within=30) == "Stopped"
        calls_at_stop = len(chain.calls)
    # The first replica's own hook may already have seen the state (when it had just re-queued the link); the claim
    # below is about the next replica's, so count the hooks run so far, once the first replica has stopped.
    stops_here = len(chain.stops)
    # The continuation is still in the queue; a replica with no memory of the stop wakes it.
    async with running_worker(settings, {"chain": chain}):
        await until(lambda: len(chain.stops) > stops_here, within=30)
    assert len(chain.calls) <= calls_at_stop + 1  # at most a call already under way when the stop came
    assert await queue_depth(sqs, queue_url) == 0
    assert chain.stops[stops_here:] == [len(chain.calls)]  # the new replica's hook saw the link's state


async def test_a_step_answered_elsewhere_cancels_the_handler_running_here(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    handler = Recorder()
    queue_url, _ = await make_queue()
    settings = worker_settings(queue_url, handler="h", visibility_timeout=3)
    async with running_worker(settings, {"h": handler}) as worker:
        arn = await start_one(sagemaker, queue_url)
        await until(lambda: bool(handler.calls))
        # Another replica (or an operator) answers the step while the handler runs here.
        await sagemaker.send_pipeline_execution_step_success(CallbackToken=handler.calls[0].token)
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
        await asyncio.wait_for(handler.cancelled.wait(), timeout=30)
        await until(lambda: not worker.tasks)
    assert worker.tally.reports == {}  # nothing reported here: no ConflictException
    assert handler.stops == []  # the step succeeded: nothing to stop
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_stopping_message_delivered_twice_runs_the_stop_hook_once(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    handler = Recorder()
    capture_url, _ = await make_queue()
    queue_url, _ = await make_queue()
    arn = await start_one(sagemaker, capture_url)  # SageMaker's messages land here; the test forwards them
    executing = (await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=10))["Messages"][0]
    await sqs.send_message(QueueUrl=queue_url, MessageBody=executing["Body"])
    async with running_worker(worker_settings(queue_url, handler="h"), {"h": handler}):
        await until(lambda: bool(handler.calls))
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)
        stopping = (await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=10))["Messages"][0]
        for _ in range(2):  # SQS delivers it twice, to the same replica
            await sqs.send_message(QueueUrl=queue_url, MessageBody=stopping["Body"])
        assert await wait_for_status(sagemaker, arn, within=30) == "Stopped"
        await until(handler.cancelled.is_set)
        await asyncio.sleep(1.0)  # time for the second copy to be handled
    assert len(handler.stops) == 1
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_retry_returned_as_the_stop_arrives_reaches_the_stop_hook(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    returning = asyncio.Event()
    stops: list[Any] = []

    class Poller:
        async def __call__(self, context: CallbackContext) -> Retry:
            returning.set()
            # It finishes its call despite the cancel (as a sync handler's thread would) and returns its Retry.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(1.0)
            return Retry(60, state={"job": "j-7"})

        async def on_stop(self, context: CallbackContext) -> None:
            stops.append(context.state)

    queue_url, _ = await make_queue()
    async with running_worker(worker_settings(queue_url, handler="p"), {"p": Poller()}):
        arn = await start_one(sagemaker, queue_url)
        await asyncio.wait_for(returning.wait(), timeout=20)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="s" * 32)
        assert await wait_for_status(sagemaker, arn, within=30) == "Stopped"
    assert {"job": "j-7"} in stops
    assert await queue_depth(sqs, queue_url) == 0
