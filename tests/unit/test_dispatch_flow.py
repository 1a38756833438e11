"""The dispatcher's flow on an in-memory queue and an in-memory SageMaker: no server, milliseconds per test.

Each test puts one message (or two) on the queue, hands what a receive returns to the dispatcher, and checks where
the delivery went: the answer SageMaker got, what is left in the queue, and the events the dispatcher published.
The server-backed tiers (integration, faults, reliability) check the same paths against moto and the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import pytest

from callback_worker.worker.app import build_dispatcher
from callback_worker.worker.clock import Clocks
from callback_worker.worker.confirm import VERIFY_GRACE
from callback_worker.worker.dispatch import STOPPING_REASON, Dispatcher, RetryPolicy
from callback_worker.worker.events import Event, Events, HandlerFinished, Noted, Tally
from callback_worker.worker.handler import CallbackContext, Fail, Handler, OutputValue, Retry
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.report import Reporter
from callback_worker.worker.retrying import BackoffPolicy
from callback_worker.worker.router import Router
from callback_worker.worker.step_context import StepResolver
from tests.fakes import FakeSageMaker, MemoryQueue, Ticks

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

NOW = 1_767_225_600.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class World:
    """One replica's dispatcher over an in-memory queue and SageMaker."""

    def __init__(self, handlers: Mapping[str, Handler], *, verify: bool = True) -> None:
        self.clock = Clock()
        self.queue = MemoryQueue(self.clock, visibility_timeout=30)
        self.sagemaker = FakeSageMaker(self.queue, Ticks())
        self.heard: list[Event] = []
        self.tally = Tally()
        events = Events((self.tally, self.heard.append))
        client = cast("SageMakerClient", self.sagemaker)
        self.leases = LeaseKeeper(self.queue, self.queue.visibility_timeout, self.clock, events=events)
        self.invoker = Invoker(threads=2)
        self.dispatcher: Dispatcher = build_dispatcher(
            queue=self.queue,
            leases=self.leases,
            reporter=Reporter(client, backoff=BackoffPolicy(0.0, 0.0), events=events),
            router=Router(dict(handlers), None, "handler", {}),
            invoker=self.invoker,
            retry=RetryPolicy(max_attempts=2, backoff=10.0),
            steps=StepResolver(client, describe=False, events=events),
            verify=verify,
            clocks=Clocks(monotonic=self.clock, wall=self.clock),
            events=events,
        )

    def start(self, arguments: dict[str, Any]) -> tuple[str, str]:
        arn = self.sagemaker.start_execution()
        return arn, self.sagemaker.start_step(arn, arguments)

    async def deliver(self, count: int = 10) -> int:
        """Receive what is visible and handle each delivery to its end; the number handled."""
        received = await self.queue.receive(count)
        for message in received:
            await self.dispatcher.handle(message)
        return len(received)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(message.body) for message in self.queue.live()]

    def close(self) -> None:
        self.invoker.shutdown()


class Returns:
    def __init__(self, result: Mapping[str, OutputValue] | Retry | Exception) -> None:
        self.result = result
        self.contexts: list[CallbackContext] = []
        self.stopped: list[CallbackContext] = []

    async def __call__(self, context: CallbackContext) -> Mapping[str, OutputValue] | Retry:
        self.contexts.append(context)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def on_stop(self, context: CallbackContext) -> None:
        self.stopped.append(context)


@pytest.fixture
def make_world() -> Any:
    worlds: list[World] = []

    def make(handlers: Mapping[str, Handler], **options: Any) -> World:
        worlds.append(World(handlers, **options))
        return worlds[-1]

    yield make
    for world in worlds:
        world.close()


async def test_a_success_is_answered_then_its_message_deleted(make_world: Any) -> None:
    handler = Returns({"answer": 42})
    world = make_world({"h": handler})
    _, token = world.start({"handler": "h"})
    assert await world.deliver() == 1
    step = world.sagemaker.steps[token]
    assert (step.status, step.outcome.outputs if step.outcome else None) == ("Succeeded", (("answer", "42"),))
    assert world.queue.live() == []
    assert (world.tally["received"], world.tally["success"]) == (1, 1)
    assert [event.handler for event in world.heard if isinstance(event, HandlerFinished)] == ["h"]


async def test_fail_answers_a_failure_with_the_handlers_reason(make_world: Any) -> None:
    world = make_world({"h": Returns(Fail("the data is bad"))})
    _, token = world.start({"handler": "h"})
    await world.deliver()
    step = world.sagemaker.steps[token]
    assert step.status == "Failed"
    assert step.outcome is not None
    assert step.outcome.reason == "the data is bad"
    assert world.queue.live() == []


async def test_a_retry_sends_the_next_link_and_deletes_the_old_one(make_world: Any) -> None:
    world = make_world({"h": Returns(Retry(delay=60, state={"job": "j-1"}))})
    _, token = world.start({"handler": "h"})
    await world.deliver()
    [body] = world.bodies()
    assert body["token"] == token
    assert body["callbackWorkerContinuation"]["state"] == {"job": "j-1"}
    assert body["callbackWorkerContinuation"]["link"] == 1
    assert world.sagemaker.steps[token].status == "Executing"
    assert world.tally["continued"] == 1
    assert await world.deliver() == 0  # delayed a minute: not visible yet


async def test_a_crash_is_called_again_later_then_failed_on_the_last_attempt(make_world: Any) -> None:
    handler = Returns(RuntimeError("boom"))
    world = make_world({"h": handler})
    _, token = world.start({"handler": "h"})
    await world.deliver()
    [body] = world.bodies()
    assert body["callbackWorkerContinuation"]["attempt"] == 2
    world.clock.now += 11  # past the retry backoff (10 s after the first attempt)
    await world.deliver()
    step = world.sagemaker.steps[token]
    assert step.status == "Failed"
    assert step.outcome is not None
    assert "failed after 2 attempt(s): RuntimeError: boom" in step.outcome.reason
    assert len(handler.contexts) == 2
    assert world.queue.live() == []


async def test_an_unknown_handler_is_answered_with_a_failure_naming_the_choices(make_world: Any) -> None:
    world = make_world({"h": Returns({})})
    _, token = world.start({"handler": "nope"})
    await world.deliver()
    outcome = world.sagemaker.steps[token].outcome
    assert outcome is not None
    assert outcome.reason == "no handler named 'nope'; available: h"


async def test_a_body_without_a_token_is_left_for_the_redrive_policy(make_world: Any) -> None:
    world = make_world({"h": Returns({})})
    world.queue.put("not json at all")
    await world.deliver()
    [left] = world.queue.live()
    assert left.body == "not json at all"
    assert world.tally["malformed"] == 1
    assert [event for event in world.heard if event == Noted("malformed")] == [Noted("malformed")]


async def test_a_token_its_execution_does_not_list_runs_nothing_and_is_left_to_the_redrive_policy(
    make_world: Any,
) -> None:
    """Not listed is inconclusive (the listing may lag): past the grace the message is kept, never deleted."""
    handler = Returns({})
    world = make_world({"h": handler})
    arn = world.sagemaker.start_execution()
    body = {"token": "Forged0001", "pipelineExecutionArn": arn, "arguments": {"handler": "h"}, "status": "Executing"}
    world.queue.put(json.dumps(body))
    world.clock.now += VERIFY_GRACE + 1  # it waited in the queue past the grace
    await world.deliver()
    assert len(world.queue.live()) == 1
    assert handler.contexts == []
    assert world.tally["unknown_token"] == 0


async def test_a_token_of_an_execution_sagemaker_does_not_know_runs_nothing_and_is_deleted(make_world: Any) -> None:
    handler = Returns({})
    world = make_world({"h": handler})
    arn = world.sagemaker.start_execution().replace("exec0001", "gone0001")
    body = {"token": "Forged0001", "pipelineExecutionArn": arn, "arguments": {"handler": "h"}, "status": "Executing"}
    world.queue.put(json.dumps(body))
    await world.deliver()
    assert world.queue.live() == []
    assert handler.contexts == []
    assert world.tally["unknown_token"] == 1


async def test_a_stopping_message_runs_the_stop_hook_and_answers_the_step(make_world: Any) -> None:
    handler = Returns({})
    world = make_world({"h": handler})
    arn, token = world.start({"handler": "h"})
    world.queue.live()[0].deleted = True  # the Executing message was handled elsewhere; only the stop arrives here
    world.sagemaker.stop(arn)
    await world.deliver()
    step = world.sagemaker.steps[token]
    assert step.status == "Stopped"
    assert step.outcome is not None
    assert step.outcome.reason == STOPPING_REASON
    assert world.queue.live() == []
    assert world.tally["stop_messages"] == 1


async def test_a_step_already_answered_runs_no_handler(make_world: Any) -> None:
    handler = Returns({})
    world = make_world({"h": handler})
    _, token = world.start({"handler": "h"})
    await world.sagemaker.send_pipeline_execution_step_failure(
        CallbackToken=token, FailureReason="answered by hand", ClientRequestToken="c" * 32
    )
    await world.deliver()
    assert handler.contexts == []
    assert world.queue.live() == []
    assert world.tally["already_done"] == 1
