"""Stateful property test of the delivery core: two replicas, one in-memory queue, one fake SageMaker.

Each replica is a :class:`~worker.dispatch.Dispatcher` built as :func:`~worker.app.build_dispatcher` builds it (its
``LeaseKeeper``, ``Reporter``, ``Router``, ``Invoker``, a verifying ``StepResolver``), without the runtime: the rules
receive messages and start ``Dispatcher.handle`` tasks themselves, renew leases, move the clock, inject faults,
stop pipeline executions, run ``StepWatch`` checks and kill replicas (kill -9: tasks cancelled, nothing released,
calls in flight never arrive or never answer; a new incarnation starts with an empty memory). See
:mod:`tests.fakes` for what the fakes assume about SQS and SageMaker.

Time. The queue (SQS's clock) reads one :class:`~tests.fakes.FakeClock`, the true time of the run, which moves only in
``advance_clock``. Each replica has two clocks of its own over it (:class:`ReplicaClocks`): a monotonic clock with
another epoch, which its leases, budgets and handlers' start times follow, and a wall clock that ``step_wall_clock``
steps by -90 s, +90 s or +12 h (an NTP step) — no invariant may depend on a replica's wall clock. A message whose lease
was not renewed in time becomes visible again, and is delivered again. The event loop runs on virtual time of its own
(:class:`VirtualTimeLoop`): backoff sleeps inside the worker take no real time, and only ``settle`` (or a rule waiting
on something) lets them run out. ``run`` and ``receive`` let the loop take a few steps only, so that rules land between
the phases of deliveries in flight.

The handler. A scripted async handler, per token a :class:`Plan`: at chain state ``s`` it works ``work[s]`` seconds
of clock time, crashes while the attempt is at most ``crashes[s]``, returns ``Retry(delays[s], state=s + 1)`` while
``s < links``, then ``{"done": "1"}``. It has an ``on_stop`` hook.

Invariants. Violations are noted the moment they happen (at a handler call, a send, a delete) and raised by the
``@invariant`` methods after every rule; liveness is checked once the rules are done.

1. **One outcome per token**: every answer SageMaker applied to a step (the first, then replays of it) is the same
   request; and that outcome is one the run justifies — ``{"done": "1"}`` only if a handler call returned it, the
   stopping reason only for a stopped execution, "failed after 3 attempt(s)" only if a call crashed on its last
   attempt.
2. **Verified before run**: no handler call starts for a step that had stopped waiting (was stopped or answered)
   before the call's delivery began, i.e. before the verification that let the call run began. (A step that stops
   while or after it is verified is a race no worker can close; the Stopping message and ``StepWatch`` cancel such a
   handler.) ``on_stop`` runs only for steps of stopped executions.
3. **One replica, one run**: a replica incarnation never runs two handler calls for one token at once (later
   deliveries join the one under way), and never sends a successor for a link older than one it had already run the
   handler for, or sent, before that delivery began (``Tokens.is_stale``).
4. **Answer (or continue), then delete**: a Stopping message is deleted only once its step has an outcome, and no
   delete leaves a step without an outcome and without any message of its token.
5. **No chain forks**. A continuation chain is linear: each link, once run, has one successor. Each link the worker
   sends records the delivery that sent it, so its predecessor; whenever a send leaves two live messages (not deleted,
   visible or not; Stopping messages aside) of one chain with one link number, the two are traced back to the message
   where they diverge — two successors of one predecessor — and the fork is a violation unless that divergence is
   one that SQS and kill -9 force on any worker using a standard queue:

   * one delivery sent both, the first send's reply having been lost (SendMessage is not idempotent); or
   * a second delivery of the predecessor, received after the replica that had sent the first successor was killed
     before it could delete the predecessor (the next link is sent before the old one is deleted, by design); or
   * a second delivery of the predecessor, received after the delivery that had sent the first successor — while
     it still held the predecessor's lease — failed to delete it and its lease then lapsed (SQS answered no renewal
     and no delete retry for a whole visibility timeout: the "lease lost" case of README's "What is not guaranteed").

   Anything else — two deliveries of one link, both alive, each sending a successor — is a fork.
6. **Nothing swallowed**: ``Dispatcher.handle`` raises nothing but ``CancelledError``, and that only on kill; its
   per-message fence catches nothing; no error-level log line but "handler failed on its last attempt"; no
   event-loop error (an exception never retrieved).
7. **Liveness** (after the rules): with the faults cleared, the replicas receive (one message at a time, in turn),
   renew and run while the clock moves on until the queue is empty and no delivery runs; then every started step has
   an outcome, and invariants 1-6 still hold.

Size: ``DELIVERY_PROPERTY_EXAMPLES`` examples (30 by default; ``make reliability-full`` sets 300) of up to 30 rules.
``--hypothesis-show-statistics`` shows what the examples exercised (redeliveries, kills, stops, excused forks, faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import os
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog
from botocore.exceptions import ClientError
from hypothesis import Phase, currently_in_test_context, event, register_random, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import callback_worker.worker.retrying
from callback_worker.worker.app import build_dispatcher
from callback_worker.worker.clock import Clocks
from callback_worker.worker.dispatch import STOPPING_REASON, Dispatcher, RetryPolicy
from callback_worker.worker.handler import CallbackContext, HandlerResult, Retry
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.lifecycle import Delivery
from callback_worker.worker.message import CONTINUATION_KEY
from callback_worker.worker.queue import Queue, ReceivedMessage
from callback_worker.worker.ratelimit import RateLimiter
from callback_worker.worker.report import Reporter
from callback_worker.worker.retrying import BackoffPolicy
from callback_worker.worker.router import Router
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.signing import Keyring
from callback_worker.worker.step_context import StepResolver
from callback_worker.worker.watch import StepWatch
from tests.fakes import (
    CURRENT_DELIVERY,
    CURRENT_PROCESS,
    QUEUE_FAULTS,
    SAGEMAKER_FAULTS,
    TEST_SIGNING_KEY,
    CallbackStep,
    FakeClock,
    FakeSageMaker,
    MemoryQueue,
    Process,
    StoredMessage,
    Ticks,
)
from tests.virtual_time import VirtualTimeLoop

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

T = TypeVar("T")

#: The worker's jitter generator, replayed by hypothesis so that a failing example runs the same way again.
register_random(callback_worker.worker.retrying._JITTER)

VISIBILITY_TIMEOUT = 30
MAX_ATTEMPTS = 3
REPLICAS = ("a", "b")
#: Callback steps started per example at most.
MAX_STEPS = 5
#: Faults waiting per operation at most: SQS calls are tried 8 times, so two faults never exhaust them.
MAX_PENDING_FAULTS = 2
#: Virtual loop seconds that ``settle`` lets pass: longer than any backoff or timeout inside the worker.
SETTLE_SECONDS = 60.0
#: Virtual loop seconds after which a rule that is still waiting is stuck.
GUARD_SECONDS = 3600.0
#: Clock seconds per round, and rounds at most, when the run is driven to quiescence at the end.
QUIET_STEP = 5.0
QUIET_ROUNDS = 400
EXPECTED_ERRORS = frozenset({"handler failed on its last attempt"})


# -- the model ---------------------------------------------------------------------------------------------------------


class ReplicaClocks:
    """One replica's two clocks over the true time of the run: a monotonic clock with an epoch of its own (it never
    jumps), and a wall clock that ``step_wall_clock`` may step by any amount."""

    def __init__(self, true_time: FakeClock) -> None:
        self.true_time = true_time
        self.monotonic_epoch = 1000.0 - true_time.now  # a process's monotonic clock starts anywhere
        self.wall_offset = 0.0

    def monotonic(self) -> float:
        return self.true_time.now + self.monotonic_epoch

    def wall(self) -> float:
        return self.true_time.now + self.wall_offset


@dataclass(frozen=True)
class Plan:
    """What the handler does for one token, by chain state (see the module docstring)."""

    links: int
    work: tuple[float, ...]
    delays: tuple[float, ...]
    crashes: tuple[int, ...]


def _plan(links: int) -> st.SearchStrategy[Plan]:
    size = links + 1

    def per_state(values: list[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
        return st.lists(st.sampled_from(values), min_size=size, max_size=size).map(tuple)

    return st.builds(
        Plan, st.just(links), per_state([0.0, 3.0, 20.0, 45.0]), per_state([0.0, 2.0, 8.0]), per_state([0, 1, 2, 3])
    )


PLANS = st.integers(0, 3).flatmap(_plan)
REPLICA = st.sampled_from(REPLICAS)
STEPS = st.integers(0, 16)
#: (service, operation, kind)
FAULTS = st.sampled_from(
    [
        (service, operation, kind)
        for service, table in (("sqs", QUEUE_FAULTS), ("sagemaker", SAGEMAKER_FAULTS))
        for operation, kinds in sorted(table.items())
        for kind in sorted(kinds)
    ]
)


@dataclass(eq=False)
class DeliveryRecord:
    """One receive of one message by one replica incarnation."""

    received: ReceivedMessage
    process: Process
    received_tick: float
    began_tick: float | None = None
    """When its task started: the verification that may let its handler run begins after this."""
    ended_tick: float | None = None
    killed_tick: float | None = None
    """When its replica was killed while it was still under way."""

    @functools.cached_property
    def position(self) -> Position:
        return Position.of(self.received.body, self.received.message_id)


@dataclass(frozen=True)
class Position:
    """Where a message stands: its token, status, chain (origin message id) and link number."""

    token: str
    status: str
    chain: str
    link: int

    @classmethod
    def of(cls, body: str, message_id: str) -> Position:
        document = json.loads(body)
        continuation = document.get(CONTINUATION_KEY) or {}
        chain = continuation.get("originMessageId") or message_id
        return cls(document["token"], document["status"], chain, int(continuation.get("link", 0)))


@dataclass(frozen=True)
class HandlerCall:
    token: str
    state: int
    attempt: int
    message_id: str
    delivery: str | None
    step_status: str


@dataclass(frozen=True)
class Fork:
    first: StoredMessage
    second: StoredMessage
    excuse: str | None
    detail: str


@dataclass(eq=False)
class Replica:
    name: str
    process: Process
    dispatcher: Dispatcher
    leases: LeaseKeeper
    steps: StepResolver
    invoker: Invoker
    deliveries: list[DeliveryRecord] = field(default_factory=list)


class ScriptedHandler:
    """The handler both replicas route every message to; the machine decides what it does."""

    def __init__(self, machine: DeliveryMachine) -> None:
        self.machine = machine

    async def __call__(self, context: CallbackContext) -> HandlerResult:
        return await self.machine.run_handler(context)

    async def on_stop(self, context: CallbackContext) -> None:
        self.machine.stop_hook_ran(context)


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._exit = contextlib.ExitStack()
        self.logs = self._exit.enter_context(structlog.testing.capture_logs())
        self.loop = VirtualTimeLoop()
        self.loop.set_task_factory(self._task_factory)
        self.loop.set_exception_handler(self._loop_error)
        self.clock = FakeClock()
        self.ticks = Ticks()
        self.queue = MemoryQueue(self.clock, visibility_timeout=VISIBILITY_TIMEOUT)
        self.queue.on_send = self._sent
        self.queue.on_delete = self._deleted
        self.sagemaker = FakeSageMaker(self.queue, self.ticks)
        self.handler = ScriptedHandler(self)
        self.plans: dict[str, Plan] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.calls: list[HandlerCall] = []
        self.stop_hooks: list[tuple[str, object]] = []
        self.returned_done: set[str] = set()
        self.crashed_out: set[str] = set()
        self.forks: list[Fork] = []
        self.known: list[tuple[Process, str, int, float]] = []
        """(replica incarnation, chain, link, tick): the incarnation ran the handler for, or sent, that link."""
        self.running_handlers: Counter[tuple[str, str]] = Counter()
        self.violations: list[str] = []
        self.failed = False
        self.incarnations: Counter[str] = Counter()
        self.replica_clocks: dict[str, ReplicaClocks] = {}
        self.replicas = {name: self._build(name) for name in REPLICAS}

    # -- replicas ------------------------------------------------------------------------------------------------------

    def _build(self, name: str) -> Replica:
        self.incarnations[name] += 1
        process = Process(f"{name}{self.incarnations[name]}")
        queue = cast(Queue, self.queue)
        client = cast("SageMakerClient", self.sagemaker)
        clocks = self.replica_clocks.setdefault(name, ReplicaClocks(self.clock))
        leases = LeaseKeeper(queue, VISIBILITY_TIMEOUT, clocks.monotonic)
        # The rate limiter paces on the loop's (virtual) time, as it sleeps on it.
        gate = SageMakerCalls(RateLimiter(clock=self.loop.time), clock=self.loop.time)
        steps = StepResolver(client, describe=False, gate=gate)
        invoker = Invoker(threads=2)
        dispatcher = build_dispatcher(
            queue=queue,
            leases=leases,
            reporter=Reporter(client, backoff=BackoffPolicy(base=0.0, cap=0.0), gate=gate),
            router=Router({"job": self.handler}, "job", "handler", {}),
            invoker=invoker,
            retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, backoff=0.0),
            clocks=Clocks(monotonic=clocks.monotonic, wall=clocks.wall),
            steps=steps,
            verify=True,
            keyring=Keyring([TEST_SIGNING_KEY]),  # every replica shares the key, as deploy/ ships it
        )
        self._watch_fence(dispatcher)
        return Replica(name, process, dispatcher, leases, steps, invoker)

    def _watch_fence(self, dispatcher: Dispatcher) -> None:
        """Record any exception the per-message fence (``_settle_fenced``) would swallow: a bug in the worker."""
        settle = dispatcher._settle

        async def watched(delivery: Delivery) -> None:
            try:
                await settle(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._violation("the per-message fence caught: " + "".join(traceback.format_exception(exc)))
                raise

        dispatcher._settle = watched  # type: ignore[method-assign]

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        """Tasks inherit the replica incarnation they were started for, so that kill -9 can find them all."""
        context = context if context is not None else contextvars.copy_context()
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
        process = context.get(CURRENT_PROCESS)
        if process is not None:
            process.tasks[task] = None
            task.add_done_callback(lambda done: process.tasks.pop(done, None))
        return task

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self._violation(f"event loop error: {context.get('message')} {context.get('exception')!r}")

    def _violation(self, text: str) -> None:
        self.violations.append(f"[at {self.clock.now - self.clock.start:.0f} s] {text}")

    def _run(self, main: Coroutine[Any, Any, T], process: Process | None = None, steps: int = 0) -> T:
        """Run ``main`` on the loop (as ``process``, if given), then let the loop take ``steps`` more steps."""

        async def wrapped() -> T:
            if process is not None:
                CURRENT_PROCESS.set(process)
            async with asyncio.timeout(GUARD_SECONDS):
                result = await main
                for _ in range(steps):
                    await asyncio.sleep(0)
                return result

        try:
            return self.loop.run_until_complete(wrapped())
        except BaseException:
            self.failed = True
            raise

    async def _receive(self, replica: Replica, max_messages: int, pick: int) -> int:
        self.queue.pick = pick
        try:
            messages = await self.queue.receive(max_messages)
        except ClientError:
            return 0  # a poller would back off and receive again
        for received in messages:
            record = DeliveryRecord(received, replica.process, self.ticks())
            self.deliveries[received.receipt_handle] = record
            replica.deliveries.append(record)
            asyncio.get_running_loop().create_task(self._deliver(replica.dispatcher, record))
        return len(messages)

    async def _deliver(self, dispatcher: Dispatcher, record: DeliveryRecord) -> None:
        CURRENT_DELIVERY.set(record.received.receipt_handle)
        record.began_tick = self.ticks()
        try:
            await dispatcher.handle(record.received)
        except asyncio.CancelledError:
            if record.process.alive and not record.process.draining:
                self._violation(f"delivery {record.received.receipt_handle} was cancelled on a live replica")
            raise
        except Exception as exc:  # noqa: BLE001 - Dispatcher.handle promises to raise nothing else: record it
            self._violation("Dispatcher.handle raised: " + "".join(traceback.format_exception(exc)))
        finally:
            record.ended_tick = self.ticks()

    async def _renew(self, replica: Replica) -> None:
        await replica.leases.renew_due()
        await replica.leases.join()

    def _kill(self, replica: Replica) -> None:
        process = replica.process
        process.alive = False
        tick = self.ticks()
        for record in replica.deliveries:
            if record.ended_tick is None:
                record.killed_tick = tick
        self._drain([process])
        replica.invoker.shutdown()

    async def _shut_down(self, replica: Replica) -> None:
        """What ``Worker.run`` does once the grace period is over: cancel the deliveries still under way, wait for
        them (an outcome being stored is finished first), then make every message still leased visible again."""
        replica.process.draining = True
        handles = [task for task in replica.process.tasks if getattr(task.get_coro(), "__name__", "") == "_deliver"]
        for task in handles:
            task.cancel()
        await asyncio.gather(*handles, return_exceptions=True)
        await replica.leases.join()
        leftover = list(replica.leases.leases.values())
        if leftover:
            await replica.leases.release(leftover)
        await self.queue.close()

    def _drain(self, processes: list[Process]) -> None:
        for _ in range(100):
            pending = [task for process in processes for task in process.tasks if not task.done()]
            if not pending:
                return
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        raise AssertionError(f"tasks of {[p.name for p in processes]} would not end")

    def _busy(self) -> bool:
        return any(not task.done() for replica in self.replicas.values() for task in replica.process.tasks)

    # -- the handler -------------------------------------------------------------------------------------------------

    async def run_handler(self, context: CallbackContext) -> HandlerResult:
        token = context.token
        state = context.state if isinstance(context.state, int) else 0
        handle = CURRENT_DELIVERY.get()
        record = self.deliveries.get(handle or "")
        step = self.sagemaker.steps[token]
        self.calls.append(HandlerCall(token, state, context.attempt, context.message_id, handle, step.status))
        if record is None or record.began_tick is None:
            self._violation(f"handler called for {token} outside any delivery")
        elif step.left_executing is not None and step.left_executing < record.began_tick:
            self._violation(
                f"handler called for {token} (state {state}, delivery {handle}) although the step was "
                f"{step.status} before the delivery began (tick {step.left_executing} < {record.began_tick})"
            )
        if record is None:
            return await self._scripted(context, state)
        position = record.position
        self.known.append((record.process, position.chain, position.link, self.ticks()))
        running = (record.process.name, token)
        self.running_handlers[running] += 1
        if self.running_handlers[running] > 1:
            self._violation(f"{record.process.name} runs two handler calls for {token} at once")
        try:
            return await self._scripted(context, state)
        finally:
            self.running_handlers[running] -= 1

    async def _scripted(self, context: CallbackContext, state: int) -> HandlerResult:
        plan = self.plans[context.token]
        index = min(state, plan.links)
        await self.clock.sleep(plan.work[index])
        if context.attempt <= plan.crashes[index]:
            if context.attempt >= MAX_ATTEMPTS:
                self.crashed_out.add(context.token)
            raise RuntimeError(f"planned crash at state {state}, attempt {context.attempt}")
        if state < plan.links:
            return Retry(plan.delays[index], state=state + 1)
        self.returned_done.add(context.token)
        return {"done": "1"}

    def stop_hook_ran(self, context: CallbackContext) -> None:
        self.stop_hooks.append((context.token, context.state))
        execution = self.sagemaker.executions[context.pipeline_execution_arn]
        if execution.stopped_at is None:
            self._violation(f"on_stop ran for {context.token}, whose execution was never stopped")

    # -- forks ---------------------------------------------------------------------------------------------------------

    @staticmethod
    def _link(message: StoredMessage) -> tuple[str, str, int] | None:
        """(token, chain, link) of a live link the worker sent; None for anything else."""
        if message.sender is None:
            return None
        document = message.document
        continuation = document.get(CONTINUATION_KEY)
        if document.get("status") != "Executing" or not isinstance(continuation, dict):
            return None
        return (document["token"], continuation["originMessageId"], continuation["link"])

    def _sent(self, message: StoredMessage) -> None:
        """A send was just applied: was it a successor of a link its replica knew to be stale, and does it leave two
        live links of one chain with one link number?"""
        key = self._link(message)
        sender = self.deliveries.get(message.sender or "")
        if key is None or sender is None:
            return
        self._check_not_stale(sender, message)
        self.known.append((sender.process, key[1], key[2], self.ticks()))
        for other in self.queue.live_messages():
            if other is not message and self._link(other) == key:
                self.forks.append(self._fork(other, message))

    def _check_not_stale(self, sender: DeliveryRecord, message: StoredMessage) -> None:
        """A replica that has run the handler for, or sent, link k of a chain drops any older link of it that it
        receives later (``Tokens.is_stale``): such a link must not get a successor from it."""
        position = sender.position
        began = sender.began_tick if sender.began_tick is not None else sender.received_tick
        later = [
            (link, tick)
            for process, chain, link, tick in self.known
            if process is sender.process and chain == position.chain and link > position.link and tick < began
        ]
        if later:
            self._violation(
                f"{sender.process.name} sent {message.message_id}, a successor of link {position.link} of chain "
                f"{position.chain} (token {position.token}), although it had run or sent link {later[0][0]} before "
                f"that delivery ({sender.received.receipt_handle}) began"
            )

    def _deleted(self, message: StoredMessage) -> None:
        """Answer (or continue), then delete: a delete never leaves a waiting step without a message to carry it,
        and a Stopping message goes only once its step is answered or its answer was handed on (a live link of the
        token carries it)."""
        token, status = message.document["token"], message.document["status"]
        step = self.sagemaker.steps[token]
        if step.outcome is not None:
            return
        handed_on = any(
            other.document["token"] == token and (other.document.get(CONTINUATION_KEY) or {}).get("answer")
            for other in self.queue.live_messages()
        )
        if status == "Stopping" and not handed_on:
            self._violation(f"the Stopping message {message.message_id} of {token} was deleted before an answer")
        elif not any(other.document["token"] == token for other in self.queue.live_messages()):
            self._violation(
                f"{message.message_id}, the last message of {token}, was deleted while the step is {step.status} "
                "without an outcome"
            )

    def _parent(self, message: StoredMessage) -> StoredMessage | None:
        record = self.deliveries.get(message.sender or "")
        return None if record is None else self.queue.messages[record.received.message_id]

    def _fork(self, first: StoredMessage, second: StoredMessage) -> Fork:
        """Trace two live links with one position back to where they diverged, and say whether that is excused."""
        one, two = first, second
        while True:
            parent, other_parent = self._parent(one), self._parent(two)
            if parent is None or other_parent is None:
                return Fork(first, second, None, f"{first.message_id} and {second.message_id}: no common predecessor")
            if parent is other_parent:
                break
            one, two = parent, other_parent
        if one.order > two.order:
            one, two = two, one
        sender_one, sender_two = self.deliveries[one.sender or ""], self.deliveries[two.sender or ""]
        detail = (
            f"{first.message_id} and {second.message_id} (token, chain, link {self._link(second)}) diverge at "
            f"{parent.message_id}: {one.message_id} sent by delivery {one.sender} "
            f"({sender_one.process.name}, received at tick {sender_one.received_tick}, killed at "
            f"{sender_one.killed_tick}), {two.message_id} by {two.sender} ({sender_two.process.name}, received at "
            f"tick {sender_two.received_tick})"
        )
        if sender_one is sender_two:
            excuse = "a send retried after its reply was lost" if one.reply_lost else None
        elif sender_one.killed_tick is not None and sender_one.killed_tick < sender_two.received_tick:
            excuse = "the predecessor came back after kill -9 of the replica that had sent its successor"
        elif one.sent_while_held and one.sender in parent.failed_deletes:
            excuse = "the predecessor came back: its delete failed, then its lease lapsed before a retry got through"
        else:
            excuse = None
            if sender_one.ended_tick is None or sender_one.ended_tick > sender_two.received_tick:
                detail += (
                    f"; {two.sender} received the predecessor while {one.sender} was still under way with it "
                    f"(its lease had lapsed: received at {sender_one.received.received_at - self.clock.start:.0f} s, "
                    f"received again at {sender_two.received.received_at - self.clock.start:.0f} s)"
                )
        return Fork(first, second, excuse, detail)

    # -- rules ---------------------------------------------------------------------------------------------------------

    @initialize(plans=st.lists(st.tuples(PLANS, st.booleans()), min_size=1, max_size=3))
    def start_steps(self, plans: list[tuple[Plan, bool]]) -> None:
        for plan, same_execution in plans:
            self.start_step(plan, same_execution)

    @rule(plan=PLANS, same_execution=st.booleans())
    def start_step(self, plan: Plan, same_execution: bool) -> None:
        if len(self.sagemaker.steps) >= MAX_STEPS:
            return
        running = [e.arn for e in self.sagemaker.executions.values() if e.status == "Executing"]
        arn = running[-1] if same_execution and running else self.sagemaker.start_execution()
        self.plans[self.sagemaker.start_step(arn)] = plan

    @rule(replica=REPLICA, count=st.integers(1, 3), pick=st.integers(0, 7), steps=STEPS)
    def receive(self, replica: str, count: int, pick: int, steps: int) -> None:
        chosen = self.replicas[replica]
        self._run(self._receive(chosen, count, pick), chosen.process, steps)

    @rule(steps=st.integers(1, 24), settle=st.booleans())
    def run(self, steps: int, settle: bool) -> None:
        """Let the loop take a few steps, or (``settle``) run until every backoff and timeout under way is over."""
        self._run(asyncio.sleep(SETTLE_SECONDS if settle else 0), steps=steps)

    @rule(replica=REPLICA)
    def renew(self, replica: str) -> None:
        chosen = self.replicas[replica]
        self._run(self._renew(chosen), chosen.process)

    @rule(seconds=st.sampled_from([1.0, 5.0, 12.0, 31.0, 70.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(replica=REPLICA, jump=st.sampled_from([-90.0, 90.0, 12 * 3600.0]))
    def step_wall_clock(self, replica: str, jump: float) -> None:
        """NTP steps one replica's wall clock; its monotonic clock goes on undisturbed."""
        self.replica_clocks[replica].wall_offset += jump
        event(f"wall clock stepped: {jump:+.0f} s")

    @rule(fault=FAULTS)
    def fail_next(self, fault: tuple[str, str, str]) -> None:
        service, operation, kind = fault
        fake = self.queue if service == "sqs" else self.sagemaker
        if len(fake.faults.pending[operation]) < MAX_PENDING_FAULTS:
            fake.fail_next(operation, kind)

    @rule(pick=st.integers(0, 7))
    def stop_execution(self, pick: int) -> None:
        running = [e.arn for e in self.sagemaker.executions.values() if e.status == "Executing"]
        if running:
            self.sagemaker.stop(running[pick % len(running)])

    @rule(replica=REPLICA)
    def restart(self, replica: str) -> None:
        self._kill(self.replicas[replica])
        self.replicas[replica] = self._build(replica)

    @rule(replica=REPLICA, grace=STEPS)
    def shutdown(self, replica: str, grace: int) -> None:
        """SIGTERM: ``grace`` loop steps for the deliveries under way, then the runtime's drain; a new incarnation."""
        chosen = self.replicas[replica]
        self._run(asyncio.sleep(0), steps=grace)
        self._run(self._shut_down(chosen), chosen.process)
        self._kill(chosen)
        self.replicas[replica] = self._build(replica)

    @rule(replica=REPLICA)
    def watch(self, replica: str) -> None:
        chosen = self.replicas[replica]
        watch = StepWatch(chosen.steps, chosen.dispatcher.tokens, interval=5.0)
        self._run(watch.check(), chosen.process)

    # -- invariants ----------------------------------------------------------------------------------------------------

    def _check(self, condition: bool, text: str) -> None:
        if not condition:
            self.failed = True
            raise AssertionError(text)

    @invariant()
    def nothing_went_wrong(self) -> None:
        errors = [
            entry
            for entry in self.logs
            if entry.get("log_level") in ("error", "critical") and entry.get("event") not in EXPECTED_ERRORS
        ]
        self._check(not errors, f"unexpected error logs: {errors}")
        self._check(not self.violations, "\n".join(self.violations))

    @invariant()
    def at_most_one_outcome_per_token(self) -> None:
        for step in self.sagemaker.steps.values():
            requests = {answer.request for answer in step.applied}
            self._check(len(requests) <= 1, f"{step.token} has {len(requests)} different outcomes: {requests}")
            problem = self._unjustified(step)
            self._check(problem is None, f"{step.token}: {problem}")

    def _unjustified(self, step: CallbackStep) -> str | None:
        answer = step.outcome
        if answer is None:
            return None
        stopped = self.sagemaker.executions[step.execution_arn].stopped_at is not None
        if answer.kind == "success":
            justified = answer.outputs == (("done", "1"),) and step.token in self.returned_done
        elif answer.reason == STOPPING_REASON:
            justified = stopped
        else:
            prefix = f"handler 'job' failed after {MAX_ATTEMPTS} attempt(s): RuntimeError: planned crash"
            justified = (answer.reason or "").startswith(prefix) and step.token in self.crashed_out
        return None if justified else f"outcome not justified by the run: {answer}"

    @invariant()
    def no_chain_forks(self) -> None:
        unexcused = [fork.detail for fork in self.forks if fork.excuse is None]
        self._check(not unexcused, "chain forked:\n" + "\n".join(unexcused))

    # -- the end -------------------------------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.failed:
                self._quiesce()
                if currently_in_test_context():
                    self._report()
        finally:
            self._close()

    def _quiesce(self) -> None:
        """No more faults; receive, renew and let time pass until nothing is left to do, then check liveness."""
        self.queue.faults.clear()
        self.sagemaker.faults.clear()
        for round_ in range(QUIET_ROUNDS):
            self._run(asyncio.sleep(SETTLE_SECONDS))
            for replica in self.replicas.values():
                self._run(self._renew(replica), replica.process)
            received = 1
            while received:  # one message at a time, to each replica in turn
                received = 0
                for replica in self.replicas.values():
                    received += self._run(self._receive(replica, 1, round_), replica.process, steps=8)
            self._run(asyncio.sleep(SETTLE_SECONDS))
            if not self.queue.live() and not self._busy():
                break
            self.clock.advance(QUIET_STEP)
        self.nothing_went_wrong()
        self.at_most_one_outcome_per_token()
        self.no_chain_forks()
        waiting = [f"{step.token} ({step.status})" for step in self.sagemaker.steps.values() if step.outcome is None]
        self._check(not waiting, f"steps never answered: {waiting}")
        left = [(message.message_id, message.body) for message in self.queue.live()]
        self._check(not left, f"messages left in the queue: {left}")
        self._check(not self._busy(), "deliveries still running at the end")

    def _report(self) -> None:
        """What the example exercised (``--hypothesis-show-statistics``)."""
        for excuse in sorted({fork.excuse or "" for fork in self.forks}):
            event(f"excused fork: {excuse}")
        for step in self.sagemaker.steps.values():
            event(f"step outcome: {step.status}")
        redelivered = sum(1 for record in self.deliveries.values() if record.received.receive_count > 1)
        event(f"redeliveries: {'0' if not redelivered else '1-4' if redelivered < 5 else '5+'}")
        killed = sum(1 for record in self.deliveries.values() if record.killed_tick is not None)
        event(f"deliveries killed under way: {'0' if not killed else '1+'}")
        event(f"stop hooks run: {'0' if not self.stop_hooks else '1+'}")
        seen = Counter((call.token, call.state, call.attempt) for call in self.calls)
        event(f"handler called twice for one state: {any(count > 1 for count in seen.values())}")
        event(f"longest chain: {max((call.state for call in self.calls), default=-1)}")
        event(f"ConflictException answered: {any(step.conflicts for step in self.sagemaker.steps.values())}")
        event(f"log lines: {'0' if not self.logs else '1+'}")
        for operation, kind in sorted(set(self.queue.faults.injected + self.sagemaker.faults.injected)):
            event(f"fault injected: {operation} {kind}")

    def _close(self) -> None:
        try:
            for replica in self.replicas.values():
                replica.process.alive = False
            self._drain([replica.process for replica in self.replicas.values()])
            leftover = asyncio.all_tasks(self.loop)
            for task in leftover:
                task.cancel()
            if leftover:
                self.loop.run_until_complete(asyncio.wait(leftover, timeout=1.0))
            for replica in self.replicas.values():
                replica.invoker.shutdown()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            self._exit.close()


DeliveryMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("DELIVERY_PROPERTY_EXAMPLES", "30")),
    stateful_step_count=30,
    deadline=None,
    # No explain phase: it reruns the minimal failing example some hundred times to say which lines only failing
    # examples ran, which here means half a minute for little.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestDeliveryProperties = DeliveryMachine.TestCase


# -- the minimal example hypothesis finds, as a plain test -----------------------------------------------------------


def replay(steps: Callable[[DeliveryMachine], None]) -> None:
    """Run ``steps`` on a fresh machine, check the invariants, then tear it down as hypothesis would."""
    machine = DeliveryMachine()
    try:
        steps(machine)
        machine.nothing_went_wrong()
        machine.at_most_one_outcome_per_token()
        machine.no_chain_forks()
    finally:
        machine.teardown()


def _lapse(machine: DeliveryMachine, *, renewed: bool) -> None:
    machine.start_steps([(Plan(links=1, work=(20.0, 0.0), delays=(0.0, 0.0), crashes=(0, 0)), False)])
    machine.receive("b", count=1, pick=0, steps=10)  # b runs link 0: a handler working 20 s
    if renewed:
        machine.advance_clock(12.0)
        machine.renew("b")
        machine.advance_clock(19.0)
    else:
        machine.advance_clock(31.0)  # no renewal in 31 s: b's lease lapses, link 0 is visible again
    machine.receive("a", count=1, pick=0, steps=10)  # a receives link 0 (if visible) and runs it too
    machine.advance_clock(20.0)  # the handlers return Retry(0, state=1)
    machine.run(steps=1, settle=True)


def test_a_delivery_whose_lease_lapsed_does_not_fork_its_chain() -> None:
    """Invariant 5 after a lease lapse. Replica b runs link 0 of a chain; its lease is not renewed for 31 s (a stalled
    event loop, ChangeMessageVisibility failing); link 0 becomes visible again and replica a receives and runs it as
    well. Both handlers return Retry: b re-queues link 1, a re-queues another link 1 (both sent for the same
    predecessor, both live), and the chain runs twice from there on — each later link's handler called twice.
    ``Dispatcher._requeue`` sends the next link without checking that the delivery still holds the message
    (``delivery.lease.lost``, or the lease past ``visible_until``), so a delivery that lost its message to another
    replica still commits its continuation."""
    replay(functools.partial(_lapse, renewed=False))


def test_the_same_schedule_with_the_lease_renewed_continues_the_chain_once() -> None:
    replay(functools.partial(_lapse, renewed=True))
