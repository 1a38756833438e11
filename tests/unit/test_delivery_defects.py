"""Twelve delivery defects of 138ca95, one test (or a few) each: every test here fails on 138ca95, on the defect's own
assertion, and passes once it is fixed.

The world is :mod:`tests.delivery_world`: the in-memory queue and SageMaker of :mod:`tests.fakes`, with faults of any
exception, and replicas built on either version of the daemon's API. Time is fake and moves only when a test moves
it; the wall clock can be stepped on its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import CredentialRetrievalError

import callback_worker.worker.sqs
from callback_worker.worker.handler import CallbackContext, HandlerResult, OutputValue, Retry
from callback_worker.worker.message import CONTINUATION_KEY
from callback_worker.worker.sqs import SqsQueue
from tests.delivery_world import World, eventually, fast_backoffs, optional_module
from tests.fakes import client_error

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

#: How long after SQS took a message an inconclusive look-up stops being retried (on 0e30725; 138ca95 has none).
VERIFY_GRACE = float(getattr(optional_module("callback_worker.worker.confirm"), "VERIFY_GRACE", 300.0))
HOURS_12 = 12 * 3600.0


# -- handlers ------------------------------------------------------------------------------------------------------


class Recorder:
    """An async handler that answers with ``results`` in turn (the last one repeated), and records its calls and
    its stop hook's."""

    def __init__(self, *results: Mapping[str, OutputValue] | Retry) -> None:
        self.results = results
        self.contexts: list[CallbackContext] = []
        self.stopped: list[CallbackContext] = []

    async def __call__(self, context: CallbackContext) -> HandlerResult:
        self.contexts.append(context)
        return self.results[min(len(self.contexts), len(self.results)) - 1]

    async def on_stop(self, context: CallbackContext) -> None:
        self.stopped.append(context)


class Held:
    """An async handler that returns ``result`` once the test releases it."""

    def __init__(self, result: Mapping[str, OutputValue] | Retry) -> None:
        self.result = result
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, context: CallbackContext) -> HandlerResult:
        self.calls += 1
        await self.release.wait()
        return self.result


class BlockingSync:
    """A sync handler (it runs in the invoker's thread pool) that blocks until its own ``on_stop`` lets it go."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.stop_ran = threading.Event()

    def __call__(self, context: CallbackContext) -> HandlerResult:
        self.started.set()
        self.release.wait(timeout=10.0)  # bounded: a thread the test forgot never outlives it for long
        return {"done": "yes"}

    def on_stop(self, context: CallbackContext) -> None:
        self.stop_ran.set()
        self.release.set()


# -- the world -----------------------------------------------------------------------------------------------------


@pytest.fixture
async def make_world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., World]]:
    fast_backoffs(monkeypatch)
    worlds: list[World] = []

    def make(**options: Any) -> World:
        worlds.append(World(**options))
        return worlds[-1]

    yield make
    for world in worlds:
        await world.close()


def answer(world: World, token: str) -> tuple[str, str | None, tuple[tuple[str, str], ...] | str | None]:
    """The step's status, and the kind and content (outputs, or reason) of the answer it took."""
    step = world.sagemaker.steps[token]
    if step.outcome is None:
        return step.status, None, None
    content = step.outcome.outputs if step.outcome.kind == "success" else step.outcome.reason
    return step.status, step.outcome.kind, content


def continuation_states(world: World) -> list[Any]:
    """The continuation state of each live message (None: a message without one)."""
    return [body.get(CONTINUATION_KEY, {}).get("state") for body in world.bodies()]


def credentials_blip() -> CredentialRetrievalError:
    return CredentialRetrievalError(provider="container-role", error_msg="the credentials endpoint timed out")


# -- 1. a Success became a Failure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AccessDeniedException", "ExpiredTokenException", "ResourceLimitExceeded"])
async def test_one_uncertain_error_on_a_success_report_does_not_turn_it_into_a_failure(
    make_world: Callable[..., World], code: str
) -> None:
    """Defect 1 (a Success becomes a Failure): one AccessDeniedException / ExpiredTokenException /
    ResourceLimitExceeded on SendPipelineExecutionStepSuccess made 138ca95 re-send the Success as a Failure ("SageMaker
    rejected the step's outputs"). None of them says anything about the outputs: once the error clears, the step
    has the Success with the handler's outputs."""
    world = make_world()
    handler = Recorder({"answer": 42})
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    world.sagemaker.answer_errors.append(client_error(code, 400, "SendPipelineExecutionStepSuccess"))

    await replica.deliver()

    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))
    assert len(handler.contexts) == 1
    assert world.queue.live() == []


# -- 2. a credentials blip ----------------------------------------------------------------------------------------


async def test_a_credentials_blip_during_a_report_keeps_the_decided_answer(make_world: Callable[..., World]) -> None:
    """Defect 2 (a credentials blip, during a report): a CredentialRetrievalError on SendPipelineExecutionStepSuccess
    escaped 138ca95's report loop; the message was kept and the outcome thrown away, so the handler ran again once the
    message reappeared. The report is retried with the same answer: the handler runs once, and its Success lands."""
    world = make_world()
    handler = Recorder({"answer": 42})
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    world.sagemaker.answer_errors.append(credentials_blip())

    await replica.deliver()
    world.time.advance(world.queue.visibility_timeout + 1)  # a message left behind is delivered again
    await replica.deliver()

    assert len(handler.contexts) == 1, "the handler ran again: its decided answer was thrown away"
    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))
    assert world.queue.live() == []


async def test_a_credentials_blip_during_a_requeue_does_not_answer_the_step(make_world: Callable[..., World]) -> None:
    """Defect 2 (a credentials blip, during a re-queue): a CredentialRetrievalError on the SendMessage of a Retry's
    next link made 138ca95 answer the step with a Failure ("the step's continuation could not be re-queued"). The send
    is retried: the link carries the state, the handler runs once per state, and its final Success lands."""
    world = make_world()
    handler = Recorder(Retry(delay=60, state={"job": "j-1"}), {"done": "yes"})
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    world.queue.send_errors.append(credentials_blip())

    await replica.deliver()
    assert answer(world, token) == ("Executing", None, None), "a credentials blip answered the step"
    assert continuation_states(world) == [{"job": "j-1"}]

    world.time.advance(61)
    await replica.deliver()

    assert [context.state for context in handler.contexts] == [None, {"job": "j-1"}]
    assert answer(world, token) == ("Succeeded", "success", (("done", "yes"),))
    assert world.queue.live() == []


# -- 3. a live step's message deleted unanswered -------------------------------------------------------------------


async def test_an_error_on_a_later_listing_page_never_deletes_a_live_steps_message(
    make_world: Callable[..., World],
) -> None:
    """Defect 3 (a live step's message deleted unanswered): a ValidationException on the second page of
    ListPipelineExecutionSteps (an execution of more than 100 steps, the token on page 2) was read by 138ca95 as
    "SageMaker does not know the execution", and the message of a live step was deleted. It says nothing of the
    execution: the message is kept, and once the listing goes through, the handler runs and the step is answered."""
    world = make_world()
    handler = Recorder({"answer": 42})
    replica = world.replica({"h": handler})
    _, tokens = world.start({"handler": "h"}, steps=101)
    token = tokens[0]  # the oldest step: the listing (newest first, 100 a page) has it on its second page
    for message in world.queue.live_messages():
        message.deleted = message.document["token"] != token  # only this step's message is under test
    refusing = True

    def second_page_refused(request: Mapping[str, Any]) -> Exception | None:
        if refusing and "NextToken" in request:
            return client_error("ValidationException", 400, "ListPipelineExecutionSteps")
        return None

    world.sagemaker.list_fault = second_page_refused
    world.time.advance(61)  # it waited a minute in a backlog
    message = world.message_of(token)

    task = await replica.take(message)
    await eventually(lambda: sum("NextToken" in request for request in world.sagemaker.list_requests) >= 6, done=[task])

    assert not message.deleted, "the message of a live step was deleted because a later page of its listing failed"
    assert handler.contexts == []
    refusing = False
    async with asyncio.timeout(5):
        await task
    assert len(handler.contexts) == 1
    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))
    assert message.deleted


async def test_a_step_not_listed_yet_is_looked_at_again_even_on_a_later_receive(
    make_world: Callable[..., World],
) -> None:
    """Defect 3 (a step not listed yet): 138ca95 gave a token its execution did not list (yet: the listing may lag
    SageMaker's own message) one more look after one visibility timeout, on the message's first receive only; a
    message released unverified at a shutdown came back with a receive count of 2 and was deleted at once. It is
    looked at again (until a grace counted from when SQS took it): once the listing shows the step, the handler runs
    and the step is answered."""
    world = make_world()
    handler = Recorder({"answer": 42})
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    world.sagemaker.hidden.add(token)  # SageMaker's listing lags its own message
    message = world.message_of(token)
    # A replica received it and was shut down before it verified it: the message was released unanswered.
    first = await world.receive_only(message)
    await world.queue.set_visibility(first.receipt_handle, 0)

    task = await replica.take(message)
    await eventually(lambda: len(world.sagemaker.list_requests) >= 4, done=[task])

    assert not message.deleted, "the message of a live step was deleted because the listing did not show it yet"
    assert handler.contexts == []
    world.sagemaker.hidden.clear()
    async with asyncio.timeout(5):
        await task
    assert len(handler.contexts) == 1
    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))
    assert message.deleted


# -- 4. the lease stamped at the long poll's start -----------------------------------------------------------------


class LongPoll:
    """An SQS client whose ReceiveMessage is a 20-second long poll, answered from the world's queue: the message
    arrives (``arrive``) 19.5 s into the poll and is handed out as the poll returns."""

    def __init__(self, world: World, arrive: Callable[[], None]) -> None:
        self.world = world
        self.arrive = arrive

    async def receive_message(self, **request: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.world.time.advance(19.5)
        self.arrive()
        self.world.time.advance(0.5)
        return {
            "Messages": [
                {
                    "MessageId": received.message_id,
                    "ReceiptHandle": received.receipt_handle,
                    "Body": received.body,
                    "Attributes": {
                        "ApproximateReceiveCount": str(received.receive_count),
                        "ApproximateFirstReceiveTimestamp": str(round(received.first_receive_time * 1000)),
                        "SentTimestamp": str(round(received.sent_time * 1000)),
                    },
                }
                for received in self.world.queue.apply_receive(request["MaxNumberOfMessages"])
            ]
        }


async def test_a_message_handed_out_late_in_a_long_poll_keeps_its_whole_lease(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 4 (a visibility timeout below the long poll's wait): 138ca95 stamped a lease at the start of the
    receive that returned the message. With a visibility timeout of 5 s and a 20 s poll in which the message arrived
    late, its lease looked lapsed on receipt, and the handler's Retry was discarded ("delivered again elsewhere"):
    the message reappeared and the handler ran again from scratch. SqsQueue.receive (driven here by a fake client,
    on the fake clocks) stamps the lease at the poll's return less a round trip: the Retry is re-queued."""
    world = make_world(visibility_timeout=5)
    handler = Recorder(Retry(delay=60, state={"job": "j-1"}))
    replica = world.replica({"h": handler})
    monkeypatch.setattr(
        callback_worker.worker.sqs, "time", SimpleNamespace(monotonic=world.time.monotonic, time=world.time.wall)
    )
    tokens: list[str] = []
    poll = LongPoll(world, arrive=lambda: tokens.extend(world.start({"handler": "h"})[1]))
    queue = SqsQueue(cast("SQSClient", poll), world.queue.url, visibility_timeout=5, wait_time=20)

    [received] = await queue.receive(10)
    await replica.dispatcher.handle(received)

    assert len(handler.contexts) == 1
    assert continuation_states(world) == [{"job": "j-1"}], "the Retry was discarded: the lease looked lapsed"
    assert answer(world, tokens[0]) == ("Executing", None, None)


# -- 5. the wall clock ---------------------------------------------------------------------------------------------


async def test_a_wall_clock_stepped_back_lets_no_lease_lapse(make_world: Callable[..., World]) -> None:
    """Defect 5 (the wall clock stepped back 90 s): 138ca95's leases ran on the wall clock; stepped back, its renewal
    rounds found no lease due while SQS's own clock ran on, the message reappeared and a second replica ran the
    handler beside the first. On the monotonic clock the lease is renewed in time: the handler runs once."""
    world = make_world()
    handler = Held({"answer": 42})
    first, second = world.replica({"h": handler}), world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    running = await first.take(world.message_of(token))
    assert await eventually(lambda: handler.calls == 1)

    world.time.step_wall(-90)
    for _ in range(12):  # a minute of renewal rounds, one every 5 s (the keeper's tick is 6 s)
        world.time.advance(5)
        await first.leases.renew_due()
        await first.leases.join()
        for received in await world.queue.receive(10):
            second.start(received)
        await asyncio.sleep(0.005)  # the second replica's deliveries get as far as they can

    assert handler.calls == 1, "the lease lapsed: another replica ran the handler of a step still running"
    handler.release.set()
    async with asyncio.timeout(5):
        await running
    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))


async def test_a_wall_clock_stepped_12_hours_ahead_does_not_fail_a_running_handler(
    make_world: Callable[..., World],
) -> None:
    """Defect 5 (the wall clock stepped 12 h ahead): 138ca95 read the 12-hour budget of a receipt on the wall clock;
    at the next renewal round it found the budget spent, cancelled the handler and failed the step ("The handler ran
    12.0 h"). On the monotonic clock 5 s have passed: the handler finishes and its Success lands."""
    world = make_world()
    handler = Held({"answer": 42})
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    running = await replica.take(world.message_of(token))
    assert await eventually(lambda: handler.calls == 1)

    world.time.step_wall(HOURS_12)
    world.time.advance(5)
    await replica.leases.renew_due()
    await replica.leases.join()
    await asyncio.sleep(0)
    handler.release.set()
    async with asyncio.timeout(5):
        await running

    assert answer(world, token) == ("Succeeded", "success", (("answer", "42"),))


async def test_a_wall_clock_stepped_12_hours_ahead_does_not_discard_a_retry(make_world: Callable[..., World]) -> None:
    """Defect 5 (the wall clock stepped 12 h ahead, then a Retry): 138ca95 checked the lease on the wall clock before
    re-queueing; stepped ahead, the lease looked lapsed, and the handler's Retry was discarded as "delivered again
    elsewhere". On the monotonic clock the lease holds: the next link is queued with the handler's state."""
    world = make_world()
    handler = Held(Retry(delay=60, state={"job": "j-1"}))
    replica = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    running = await replica.take(world.message_of(token))
    assert await eventually(lambda: handler.calls == 1)

    world.time.step_wall(HOURS_12)
    handler.release.set()
    async with asyncio.timeout(5):
        await running

    assert continuation_states(world) == [{"job": "j-1"}], "the Retry was discarded: the lease looked lapsed"
    assert answer(world, token) == ("Executing", None, None)


# -- 6. a shutdown while a decided answer waits for SageMaker ------------------------------------------------------


async def test_a_shutdown_while_sagemaker_is_down_hands_the_decided_answer_on(make_world: Callable[..., World]) -> None:
    """Defect 6 (SIGTERM while a decided answer waits for SageMaker): 138ca95 cancelled the report at the end of the
    grace, the message was released, and the next replica ran the handler again (and answered what that run
    decided). The decided answer is handed on: after the shutdown, a second replica with SageMaker healthy answers
    the step with it, and the handler ran once."""
    world = make_world()
    handler = Recorder({"answer": "first"}, {"answer": "second"})
    first = world.replica({"h": handler})
    _, [token] = world.start({"handler": "h"})
    world.sagemaker.outage = client_error("ServiceUnavailable", 503, "SendPipelineExecutionStepSuccess")

    await first.take(world.message_of(token))
    assert await eventually(lambda: world.sagemaker.answer_attempts >= 3)
    await first.shut_down()  # the grace is over: deliveries cancelled, leases left over released
    world.sagemaker.outage = None
    second = world.replica({"h": handler})
    for _ in range(3):
        await second.deliver()

    assert len(handler.contexts) == 1, "the handler ran again after the shutdown: its decided answer was lost"
    assert answer(world, token) == ("Succeeded", "success", (("answer", "first"),))
    assert world.queue.live() == []


# -- 7. a sync handler's on_stop starved ---------------------------------------------------------------------------


async def test_a_sync_stop_hook_runs_while_every_handler_thread_is_busy(make_world: Callable[..., World]) -> None:
    """Defect 7 (sync handlers' on_stop starved): 138ca95 ran a sync on_stop on the handlers' thread pool, queued
    behind the very handler it has to stop; with the pool full (one thread, the handler blocking until its on_stop
    lets it go) it never ran. A Stopping message runs it: the handler is let go and the step stopped."""
    world = make_world()
    handler = BlockingSync()
    replica = world.replica({"h": handler}, threads=1)
    arn, [token] = world.start({"handler": "h"})
    try:
        running = await replica.take(world.message_of(token))
        assert await eventually(handler.started.is_set)
        world.sagemaker.stop(arn)
        stopping = await replica.take(world.message_of(token, "Stopping"))

        assert await eventually(handler.stop_ran.is_set), "on_stop never ran: it waits behind the handler it stops"
        async with asyncio.timeout(5):
            await asyncio.gather(running, stopping)
    finally:
        handler.release.set()  # never leave a thread blocked behind the test
    assert answer(world, token)[0] == "Stopped"


# -- 8. a stale listing lets a handler start ----------------------------------------------------------------------


async def test_a_listing_from_before_the_receipt_does_not_start_a_handler_on_a_stopped_step(
    make_world: Callable[..., World],
) -> None:
    """Defect 8 (the 2 s listing cache): replica A lists an execution (its steps Executing); replica B stops and
    answers one of them; within 2 s A receives that step's Executing message, and 138ca95 verified it against its
    cached listing and ran the handler on a step already stopped. A delivery trusts only a listing started after
    its receipt: A looks again and runs nothing."""
    world = make_world()
    first_step, second_step = Recorder(Retry(delay=60, state={"job": "j-1"})), Recorder({"answer": 42})
    handlers = {"one": first_step, "two": second_step}
    a, b = world.replica(handlers), world.replica(handlers)
    arn = world.sagemaker.start_execution()
    one = world.sagemaker.start_step(arn, {"handler": "one"})
    two = world.sagemaker.start_step(arn, {"handler": "two"})
    # A lists the execution as it verifies step one (whose handler asks to be called again: nothing is answered).
    await (await a.take(world.message_of(one)))
    # The pipeline is stopped; B takes step two's Stopping message, and stops and answers the step.
    world.sagemaker.stop(arn)
    await (await b.take(world.message_of(two, "Stopping")))
    assert answer(world, two)[0] == "Stopped"

    world.time.advance(1)
    await (await a.take(world.message_of(two)))  # a second later: A's listing is not 2 s old

    assert second_step.contexts == [], "a handler started on a step another replica had stopped and answered"


# -- 9. a stop hook misrouted ------------------------------------------------------------------------------------


async def test_a_stopping_message_runs_the_hook_of_the_handler_routed_for_its_step(
    make_world: Callable[..., World],
) -> None:
    """Defect 9 (stop hook misrouted): with step routes ({"pipe/Callback1": "a", "pipe/*": "b"}), 138ca95 routed a
    Stopping message that had no leader on the replica with no step name, and ran the hook of "b", the handler
    that never ran for the step. The hook of the handler routed for the step SageMaker lists runs."""
    world = make_world(pipeline="pipe")
    routed, fallback = Recorder({}), Recorder({})
    replica = world.replica({"a": routed, "b": fallback}, routes={"pipe/Callback1": "a", "pipe/*": "b"})
    arn, [token] = world.start()  # no handler argument: the route table chooses
    world.message_of(token).deleted = True  # its Executing message was handled elsewhere; only the stop comes here
    world.sagemaker.stop(arn)

    await replica.deliver()

    assert (len(routed.stopped), len(fallback.stopped)) == (1, 0), "the stop hook of another handler ran"
    assert routed.stopped[0].step_name == "Callback1"
    assert answer(world, token)[0] == "Stopped"


# -- 10. chains keyed by chain id alone ---------------------------------------------------------------------------


async def test_a_message_naming_another_steps_chain_leaves_that_chain_alone(make_world: Callable[..., World]) -> None:
    """Defect 10 (chains keyed by chain id alone): a message with its own live token but another step's chain id
    (originMessageId) and a huge link number made 138ca95 take that other step's next link for a stale one and drop
    it: the other step never completed. Chains are keyed by token and chain id: the other step's chain completes."""
    world = make_world()
    chained, other = Recorder(Retry(delay=60, state={"job": "j-1"}), {"done": "yes"}), Recorder({"other": "ok"})
    replica = world.replica({"chained": chained, "other": other})
    arn = world.sagemaker.start_execution()
    token = world.sagemaker.start_step(arn, {"handler": "chained"})
    chain = world.message_of(token).message_id
    await replica.deliver()  # the first link: the handler asks to be called again in a minute
    world.time.advance(1)
    intruder = world.sagemaker.start_step(arn, {"handler": "other"})
    genuine = world.message_of(intruder)
    genuine.deleted = True
    continuation = {"attempt": 1, "continuations": 0, "notBefore": 0, "originMessageId": chain, "link": 1_000_000}
    world.queue.put(json.dumps({**genuine.document, CONTINUATION_KEY: continuation}))
    await replica.deliver()
    assert answer(world, intruder)[0] == "Succeeded"

    world.time.advance(61)
    await replica.deliver()

    states = [context.state for context in chained.contexts]
    assert states == [None, {"job": "j-1"}], "the chain's next link was dropped as stale"
    assert answer(world, token) == ("Succeeded", "success", (("done", "yes"),))
    assert world.queue.live() == []


# -- 11. a stop hook for a token SageMaker did not confirm --------------------------------------------------------


async def test_a_stopping_message_whose_token_cannot_be_confirmed_runs_no_hook(
    make_world: Callable[..., World],
) -> None:
    """Defect 11 (a stop hook for an unconfirmed token): when ListPipelineExecutionSteps was refused, 138ca95 ran the
    stop hook of a Stopping message with no leader anyway ("stopping it anyway") and answered the step. No hook runs
    for a token SageMaker did not confirm: the message is kept (here past the grace: for the redrive policy)."""
    world = make_world()
    handler = Recorder({})
    replica = world.replica({"h": handler}, default="h")  # SageMaker's Stopping message carries no arguments
    arn, [token] = world.start()
    world.message_of(token).deleted = True  # its Executing message was handled elsewhere
    world.sagemaker.list_fault = lambda _: client_error("AccessDeniedException", 400, "ListPipelineExecutionSteps")
    world.sagemaker.stop(arn)
    world.time.advance(VERIFY_GRACE + 1)  # it waited in the queue past the grace

    await replica.deliver()

    assert handler.stopped == [], "a stop hook ran for a token SageMaker did not confirm"
    assert [message.document["status"] for message in world.queue.live_messages()] == ["Stopping"]
    assert answer(world, token) == ("Stopping", None, None)


# -- 12. a Stopping message's own state ---------------------------------------------------------------------------


async def test_a_stopping_messages_own_state_never_reaches_the_stop_hook(make_world: Callable[..., World]) -> None:
    """Defect 12 (a Stopping message's own state reaches on_stop): with no leader on the replica, 138ca95 gave the
    stop hook the continuation state carried in the Stopping message's body, which nothing vouches for. The hook
    gets no state."""
    world = make_world()
    handler = Recorder({})
    replica = world.replica({"h": handler}, default="h")  # SageMaker's Stopping message carries no arguments
    arn, [token] = world.start()
    world.message_of(token).deleted = True  # its Executing message was handled elsewhere
    world.sagemaker.stop(arn)
    stopping = world.message_of(token, "Stopping")
    stopping.deleted = True
    continuation = {
        "attempt": 1,
        "continuations": 2,
        "state": {"job": "forged"},
        "notBefore": 0,
        "originMessageId": "m09999",
        "link": 2,
    }
    world.queue.put(json.dumps({**stopping.document, CONTINUATION_KEY: continuation}))

    await replica.deliver()

    assert [context.state for context in handler.stopped] == [None], "the Stopping message's own state reached on_stop"
    assert answer(world, token)[0] == "Stopped"
