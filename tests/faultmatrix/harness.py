"""A small in-memory world in which the real dispatcher meets one fault at a time, on virtual time.

The world is :class:`tests.fakes.MemoryQueue` and :class:`tests.fakes.FakeSageMaker`, wrapped so that an
:class:`Injector` can make one AWS operation fail (the exception the real client raises, from
:meth:`tests.faultmatrix.catalogue.Cell.exception`) or hang. Replicas are built as
:func:`~worker.app.build_dispatcher` builds them (``LeaseKeeper``, ``Reporter``, a verifying ``StepResolver``), driven
by a loop standing in for the runtime's poller and lease ticker: receive, start each delivery as a task, let a second
pass, renew the leases due, until the queue is empty and no delivery runs. A shutdown is the runtime's drain: stop
receiving, let the deliveries run for a grace period, cancel what is left, wait for it, release the leftover leases.

Time. Everything runs on one clock: the event loop's virtual time (:class:`VirtualTimeLoop`, after the loop of
``tests/unit/test_delivery_properties.py``). The worker's monotonic clock is ``loop.time()``, its wall clock and the
queue's are that plus an epoch, and the backoffs' ``asyncio.sleep`` move the same clock: a 30-second fault lasts 30
seconds of backoffs, lease renewals and visibility timeouts.

The handler is scripted per step by its routing argument (:data:`KINDS`) and records every call
(:class:`HandlerCall`); what each kind decides is :func:`decided`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import callback_worker.worker.retrying
from callback_worker.worker.app import build_dispatcher
from callback_worker.worker.clock import Clocks
from callback_worker.worker.dispatch import Dispatcher, RetryPolicy
from callback_worker.worker.handler import CallbackContext, Fail, HandlerResult, Retry
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.message import CONTINUATION_KEY
from callback_worker.worker.outcome import Failure, Outcome, Success
from callback_worker.worker.queue import BatchEntryError, ReceivedMessage
from callback_worker.worker.ratelimit import RateLimiter
from callback_worker.worker.report import Reporter
from callback_worker.worker.retrying import BackoffPolicy
from callback_worker.worker.router import Router
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.signing import Keyring, process_keyring
from callback_worker.worker.step_context import StepResolver
from tests.fakes import TEST_SIGNING_KEY, CallbackStep, FakeSageMaker, MemoryQueue, StoredMessage, Ticks
from tests.virtual_time import VirtualTimeLoop

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

T = TypeVar("T")

#: Epoch seconds at virtual time 0 (the wall clock of the worker and of the queue).
EPOCH = 1_767_225_600.0
VISIBILITY_TIMEOUT = 30
#: Simulated seconds after which a run that has not come to rest is a hang.
GUARD_SECONDS = 3600.0
#: The reporter's backoff: small, so that a report follows a fault's end closely.
REPORT_BACKOFF = BackoffPolicy(0.2, 5.0)
#: What the ``retry`` handler asks for, and how long the ``slow`` one works (long enough for lease renewals), unless a
#: scenario sets its world's own.
RETRY_DELAY = 3.0
SLOW_WORK = 40.0
PIPELINE = "demo"
#: Notes for the run's summary (``conftest.py``): documented windows the shutdown-phase tests met.
NOTES: list[str] = []

# -- the trace ---------------------------------------------------------------------------------------------------------


class Trace:
    """What happened, one line per event, stamped with the virtual time: the diagnosis of a failing run."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(f"{self.clock():8.2f}s  {text}")

    def tail(self, count: int = 80) -> str:
        lines = self.lines if len(self.lines) <= count else ["...", *self.lines[-count:]]
        return "\n".join(lines)


def short(token: str) -> str:
    """A step's token as the trace shows it (the fake's tokens are ``T`` and a number)."""
    return token.lstrip("T0") or "0"


def link_of(body: str) -> tuple[str, int, bool]:
    """(token, link, carries a handed-on answer) of a message body."""
    document = json.loads(body)
    continuation = document.get(CONTINUATION_KEY) or {}
    return str(document["token"]), int(continuation.get("link", 0)), continuation.get("answer") is not None


def describe_body(body: str) -> str:
    token, link, answer = link_of(body)
    return f"step {short(token)} link {link}" + (" (answer handed on)" if answer else "")


# -- faults --------------------------------------------------------------------------------------------------------


Page = Literal["first", "later"]


@dataclass
class Hit:
    """One call the injector failed (or held)."""

    at: float
    operation: str
    subject: str
    """The token (answers, sends), execution ARN (listings, describes), receipt handles, or ""."""
    code: str


@dataclass
class Injector:
    """Makes ``operations`` fail: the next call only (``duration=None``), every call for ``duration`` seconds from the
    first one it failed, or every call until :meth:`clear` (``math.inf``). ``page`` limits a
    ``ListPipelineExecutionSteps`` fault to first pages or to later ones; ``hang`` holds the calls instead of
    failing them (until the fault is cleared, or the caller is cancelled)."""

    operations: frozenset[str]
    make: Callable[[str], BaseException]
    clock: Callable[[], float]
    trace: Trace
    duration: float | None = None
    page: Page = "first"
    hang: bool = False
    first: float | None = None
    hits: list[Hit] = field(default_factory=list)
    cleared: bool = False
    _released: asyncio.Event | None = None

    def active(self, operation: str, *, later_page: bool = False) -> bool:
        if self.cleared or operation not in self.operations:
            return False
        if operation == "ListPipelineExecutionSteps" and later_page != (self.page == "later"):
            return False
        if self.first is None:
            return True
        if self.duration is None:
            return False
        return self.clock() < self.first + self.duration

    async def gate(self, operation: str, subject: str = "", *, later_page: bool = False) -> None:
        """A call of ``operation`` reaches the service: fail it, hold it, or let it through."""
        await asyncio.sleep(0)  # the request's trip: other tasks run meanwhile
        if not self.active(operation, later_page=later_page):
            return
        now = self.clock()
        if self.first is None:
            self.first = now
        if self.hang:
            self.hits.append(Hit(now, operation, subject, "hang"))
            self.trace(f"FAULT {operation} {subject} held (no answer)")
            if self._released is None:
                self._released = asyncio.Event()
            await self._released.wait()
            return
        exc = self.make(operation)
        code = _code(exc)
        self.hits.append(Hit(now, operation, subject, code))
        self.trace(f"FAULT {operation} {subject} -> {code}")
        raise exc

    def clear(self) -> None:
        """The fault is over: later calls go through, held ones are answered."""
        if self.cleared:
            return
        self.cleared = True
        if self._released is not None:
            self._released.set()
        self.trace("fault cleared")

    @property
    def last(self) -> float | None:
        return self.hits[-1].at if self.hits else None


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


class FaultyQueue(MemoryQueue):
    """The in-memory queue with one injector in front of its operations (named as the SQS API names them)."""

    def __init__(self, clock: Callable[[], float], injector: Injector, trace: Trace) -> None:
        super().__init__(clock, visibility_timeout=VISIBILITY_TIMEOUT)
        self.injector = injector
        self.trace = trace
        self.attribute_calls = 0

    async def attributes(self) -> dict[str, str]:
        self.attribute_calls += 1
        await self.injector.gate("GetQueueAttributes")
        return await super().attributes()

    async def receive(self, max_messages: int) -> list[ReceivedMessage]:
        await self.injector.gate("ReceiveMessage")
        return await super().receive(max_messages)

    async def set_visibility_many(self, changes: Sequence[tuple[str, int]]) -> list[BatchEntryError | None]:
        await self.injector.gate("ChangeMessageVisibilityBatch", ",".join(handle for handle, _ in changes))
        errors = await super().set_visibility_many(changes)
        for (handle, seconds), error in zip(changes, errors, strict=True):
            if error is not None:
                self.trace(f"visibility of {handle} to {seconds} s refused: {error.code}")
        return errors

    async def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        await self.injector.gate("ChangeMessageVisibility", receipt_handle)
        await super().set_visibility(receipt_handle, seconds)
        self.trace(f"{receipt_handle} visible again in {seconds} s")

    async def delete(self, receipt_handle: str) -> None:
        await self.injector.gate("DeleteMessageBatch", receipt_handle)
        await super().delete(receipt_handle)
        self.trace(f"deleted {receipt_handle}")

    async def send(self, body: str, delay: int = 0) -> str:
        token, _, _ = link_of(body)
        await self.injector.gate("SendMessage", token)
        message_id = await super().send(body, delay)
        self.trace(f"sent {message_id}: {describe_body(body)}, delay {delay} s")
        return message_id


class FaultySageMaker(FakeSageMaker):
    """The fake SageMaker with one injector in front of the calls the worker makes."""

    def __init__(self, queue: MemoryQueue, injector: Injector, trace: Trace) -> None:
        super().__init__(queue, Ticks(), pipeline=PIPELINE)
        self.injector = injector
        self.trace = trace

    def add_filler_steps(self, execution_arn: str, count: int) -> None:
        """``count`` steps that already succeeded, listed before the execution's earlier steps (the listing is newest
        first): with more than a page of them, the execution's own callback step is on the second page."""
        execution = self.executions[execution_arn]
        for number in range(count):
            token = f"F{len(self.steps) + 1:09d}"
            self.steps[token] = CallbackStep(token, f"Filler{number + 1}", execution_arn, status="Succeeded")
            execution.tokens.append(token)

    async def list_pipeline_execution_steps(self, **request: Any) -> dict[str, Any]:
        arn = str(request["PipelineExecutionArn"])
        await self.injector.gate("ListPipelineExecutionSteps", arn, later_page="NextToken" in request)
        return await super().list_pipeline_execution_steps(**request)

    async def describe_pipeline_execution(self, **request: Any) -> dict[str, Any]:
        await self.injector.gate("DescribePipelineExecution", str(request["PipelineExecutionArn"]))
        return await super().describe_pipeline_execution(**request)

    async def send_pipeline_execution_step_success(self, **request: Any) -> dict[str, Any]:
        return await self._traced(
            "SendPipelineExecutionStepSuccess", request, super().send_pipeline_execution_step_success
        )

    async def send_pipeline_execution_step_failure(self, **request: Any) -> dict[str, Any]:
        return await self._traced(
            "SendPipelineExecutionStepFailure", request, super().send_pipeline_execution_step_failure
        )

    async def _traced(
        self, operation: str, request: dict[str, Any], call: Callable[..., Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        token = str(request["CallbackToken"])
        what = request.get("FailureReason") or request.get("OutputParameters")
        await self.injector.gate(operation, token)
        try:
            response = await call(**request)
        except Exception as exc:
            self.trace(f"{operation} step {short(token)} {what!r} -> {_code(exc)}")
            raise
        self.trace(f"{operation} step {short(token)} {what!r} -> accepted")
        return response


# -- the handler -------------------------------------------------------------------------------------------------------

Kind = Literal["success", "retry", "fail", "slow"]
#: What each kind of step's handler does: returns a Success with outputs; returns Retry once, then a Success; raises
#: Fail; works SLOW_WORK seconds (its lease is renewed meanwhile), then returns a Success.
KINDS: tuple[Kind, ...] = ("success", "retry", "fail", "slow")
FAIL_REASON = "reason c: the input data is bad"


def decided(kind: Kind) -> Outcome:
    """The answer a step's handler decides, in the request shapes of :mod:`worker.outcome`."""
    if kind == "success":
        return Success((("out", "a"), ("n", "1"), ("ok", "true")))
    if kind == "retry":
        return Success((("out", "b"),))
    if kind == "fail":
        return Failure(FAIL_REASON)
    return Success((("out", "d"),))


def answered_as_decided(step: CallbackStep, kind: Kind) -> bool:
    """Whether the answer SageMaker has for ``step`` is the one its handler decided."""
    outcome, want = step.outcome, decided(kind)
    if outcome is None:
        return False
    if isinstance(want, Success):
        return outcome.kind == "success" and outcome.outputs == want.outputs
    return outcome.kind == "failure" and outcome.reason == want.reason


def states_of(kind: Kind) -> set[int | None]:
    """The continuation states the handler of a step of ``kind`` is called with on the way to its answer."""
    return {None, 1} if kind == "retry" else {None}


#: The replica on whose behalf the current task runs.
CURRENT_REPLICA: contextvars.ContextVar[str] = contextvars.ContextVar("faultmatrix_replica", default="?")


@dataclass
class HandlerCall:
    token: str
    kind: str
    state: int | None
    attempt: int
    replica: str
    started: float
    step_status: str
    experiment_name: str | None
    ended: float | None = None
    end: str = "running"
    """``returned``, ``raised Fail``, ``returned Retry``, ``cancelled`` or ``running``."""

    @property
    def completed(self) -> bool:
        """The call came to a decision (it was not cancelled under way)."""
        return self.end not in ("cancelled", "running")


class ScriptedHandler:
    """Every step's handler: does what its kind says, records each call."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def __call__(self, context: CallbackContext) -> HandlerResult:
        world = self.world
        state = context.state if isinstance(context.state, int) else None
        step = world.sagemaker.steps[context.token]
        call = HandlerCall(
            context.token,
            context.handler_name,
            state,
            context.attempt,
            CURRENT_REPLICA.get(),
            world.now(),
            step.status,
            context.experiment_name,
        )
        world.calls.append(call)
        world.trace(f"handler {context.handler_name} starts for step {short(context.token)} state {state}")
        try:
            result = await self._script(context.handler_name, state)
        except asyncio.CancelledError:
            call.end = "cancelled"
            raise
        except Fail:
            call.end = "raised Fail"
            raise
        else:
            call.end = "returned Retry" if isinstance(result, Retry) else "returned"
            return result
        finally:
            call.ended = world.now()
            world.trace(f"handler {context.handler_name} for step {short(context.token)} state {state}: {call.end}")

    async def _script(self, kind: str, state: int | None) -> HandlerResult:
        if kind == "success":
            return {"out": "a", "n": 1, "ok": True}
        if kind == "retry":
            return Retry(self.world.retry_delay, state=1) if state is None else {"out": "b"}
        if kind == "fail":
            raise Fail(FAIL_REASON)
        await asyncio.sleep(self.world.slow_work)
        return {"out": "d"}


# -- replicas and the world ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Replica:
    name: str
    dispatcher: Dispatcher
    leases: LeaseKeeper
    invoker: Invoker
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    draining: bool = False

    def busy(self) -> bool:
        return any(not task.done() for task in self.tasks)


@dataclass
class Deletion:
    at: float
    message_id: str
    token: str
    link: int
    step_status: str


class Hang(AssertionError):
    """The run did not come to rest within :data:`GUARD_SECONDS`."""


class World:
    """One queue, one SageMaker, the steps of a run, and the replicas that handle them (one at a time)."""

    def __init__(self, loop: VirtualTimeLoop, *, describe: bool = False, fillers: int = 0) -> None:
        self.loop = loop
        self.describe = describe
        self.fillers = fillers
        self.retry_delay = RETRY_DELAY
        """What the ``retry`` handler asks for."""
        self.slow_work = SLOW_WORK
        """How long the ``slow`` handler works."""
        self.shared_key = True
        """Whether the replicas share a signing key (as deploy/ ships it), or each has a key of its own (no key
        configured)."""
        self.trace = Trace(self.now)
        self.injector = Injector(frozenset(), _no_fault, self.now, self.trace)
        self.queue = FaultyQueue(self.wall, self.injector, self.trace)
        self.queue.on_delete = self._deleted
        self.sagemaker = FaultySageMaker(self.queue, self.injector, self.trace)
        self.handler = ScriptedHandler(self)
        self.kinds: dict[str, Kind] = {}
        """Token -> what its handler does (the run's own steps; filler steps are not here)."""
        self.calls: list[HandlerCall] = []
        self.replicas: list[Replica] = []
        self.violations: list[str] = []
        self.deletions: list[Deletion] = []
        """Messages deleted while their step was waiting, unanswered, with no other live message of its token."""
        self.startup_refusals = 0

    # -- clocks

    def now(self) -> float:
        return self.loop.time()

    def wall(self) -> float:
        return EPOCH + self.loop.time()

    # -- set-up

    def use(self, injector: Injector) -> None:
        """Put ``injector`` in front of the services (built with this world's clock and trace)."""
        self.injector = self.queue.injector = self.sagemaker.injector = injector

    def start_steps(self, kinds: Sequence[Kind] = KINDS, padding: int = 0) -> None:
        """One callback step of each kind, each in an execution of its own (with ``fillers`` steps listed first);
        ``padding`` characters of arguments besides the handler's name make its message that much larger."""
        for kind in kinds:
            arn = self.sagemaker.start_execution()
            arguments = {"handler": kind, "pad": "p" * padding} if padding else {"handler": kind}
            token = self.sagemaker.start_step(arn, arguments)
            if self.fillers:
                self.sagemaker.add_filler_steps(arn, self.fillers)
            self.kinds[token] = kind
            self.trace(f"step {short(token)} ({kind}) started in {arn.rsplit('/', 1)[-1]}")

    def new_replica(self) -> Replica:
        name = f"w{len(self.replicas) + 1}"
        client = cast("SageMakerClient", self.sagemaker)
        gate = SageMakerCalls(RateLimiter(clock=self.now), clock=self.now)
        leases = LeaseKeeper(self.queue, VISIBILITY_TIMEOUT, self.now)
        invoker = Invoker(threads=2)
        dispatcher = build_dispatcher(
            queue=self.queue,
            leases=leases,
            reporter=Reporter(client, backoff=REPORT_BACKOFF, gate=gate),
            router=Router(dict.fromkeys(KINDS, self.handler), None, "handler", {}),
            invoker=invoker,
            retry=RetryPolicy(max_attempts=3, backoff=2.0),
            steps=StepResolver(client, describe=self.describe, gate=gate),
            verify=True,
            clocks=Clocks(monotonic=self.now, wall=self.wall),
            keyring=Keyring([TEST_SIGNING_KEY]) if self.shared_key else process_keyring(),
        )
        replica = Replica(name, dispatcher, leases, invoker)
        self.replicas.append(replica)
        self.trace(f"replica {name} starts")
        return replica

    # -- running

    async def start_up(self, check: Callable[[], Awaitable[object]], restart_after: float = 10.0) -> None:
        """The daemon's start-up check (``worker.app.check_queue``), restarted after ``restart_after`` seconds each
        time it refuses to start, as an orchestrator restarts a process that exited."""
        while True:
            try:
                await check()
            except Exception as exc:  # a refusal to start: the process exits and is restarted
                self.startup_refusals += 1
                self.trace(f"start-up refused: {type(exc).__name__}: {exc}")
                await asyncio.sleep(restart_after)
                if self.now() > GUARD_SECONDS:
                    raise Hang(f"the daemon never started:\n{self.trace.tail()}") from exc
                continue
            self.trace("start-up check passed")
            return

    async def drive(self, replica: Replica, *, stop_after: float | None = None) -> None:
        """Receive, start deliveries, let a second pass, renew leases; until the queue is empty and no delivery runs
        (or ``stop_after`` seconds have passed). Raises :class:`Hang` past :data:`GUARD_SECONDS`."""
        started = self.now()
        while True:
            try:
                received = await self.queue.receive(10)
            except Exception as exc:  # noqa: BLE001 - a poller backs off and receives again
                self.trace(f"{replica.name} receive failed: {_code(exc)}")
                received = []
            for message in received:
                self.trace(
                    f"{replica.name} received {message.message_id} ({message.receipt_handle}): "
                    f"{describe_body(message.body)}"
                )
                replica.tasks.append(self.loop.create_task(self._deliver(replica, message)))
            await asyncio.sleep(1.0)
            await replica.leases.renew_due()
            if stop_after is not None and self.now() - started >= stop_after:
                return
            if self.quiet():
                return
            if self.now() > GUARD_SECONDS:
                raise Hang(f"no rest after {GUARD_SECONDS:.0f} simulated seconds:\n{self.trace.tail()}")

    async def shut_down(self, replica: Replica, grace: float) -> None:
        """The runtime's drain: no more receives; the deliveries under way get ``grace`` seconds, then those left are
        cancelled and waited for (an outcome being stored is finished first); the leases left are released. The
        leases are renewed throughout, as the runtime's lease ticker keeps running until the drain is over."""
        replica.draining = True
        self.trace(f"replica {replica.name} shuts down (grace {grace:.0f} s)")
        deadline = self.now() + grace
        while replica.busy() and self.now() < deadline:
            await asyncio.sleep(min(1.0, max(0.0, deadline - self.now())))
            await replica.leases.renew_due()
        pending = [task for task in replica.tasks if not task.done()]
        if pending:
            self.trace(f"grace over: cancelling {len(pending)} deliveries")
        for task in pending:
            task.cancel()
        while replica.busy():
            await asyncio.sleep(1.0)
            await replica.leases.renew_due()
            if self.now() > GUARD_SECONDS:
                raise Hang(f"cancelled deliveries never ended:\n{self.trace.tail()}")
        await replica.leases.join()
        leftover = list(replica.leases.leases.values())
        if leftover:
            self.trace(f"releasing {[lease.message.receipt_handle for lease in leftover]}")
            await replica.leases.release(leftover)
        await self.queue.close()
        replica.invoker.shutdown()
        self.trace(f"replica {replica.name} stopped")

    async def _deliver(self, replica: Replica, received: ReceivedMessage) -> None:
        CURRENT_REPLICA.set(replica.name)
        try:
            await replica.dispatcher.handle(received)
        except asyncio.CancelledError:
            if not replica.draining:
                self.violation(f"delivery {received.receipt_handle} was cancelled on a replica that is not stopping")
            self.trace(f"delivery {received.receipt_handle} ended cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - Dispatcher.handle promises to raise nothing else: record it
            self.violation(f"Dispatcher.handle raised {exc!r}")
        else:
            self.trace(f"delivery {received.receipt_handle} ended")

    def quiet(self) -> bool:
        return not self.queue.live() and not any(replica.busy() for replica in self.replicas)

    def violation(self, text: str) -> None:
        self.violations.append(f"[{self.now():.2f}s] {text}")
        self.trace(f"VIOLATION {text}")

    def _deleted(self, message: StoredMessage) -> None:
        token, link, _ = link_of(message.body)
        step = self.sagemaker.steps.get(token)
        if step is None or step.outcome is not None or step.status not in ("Executing", "Starting"):
            return
        others = [m for m in self.queue.live_messages() if m is not message and link_of(m.body)[0] == token]
        if not others:
            self.deletions.append(Deletion(self.now(), message.message_id, token, link, step.status))
            self.trace(
                f"{message.message_id} (step {short(token)} link {link}) deleted while the step waits, unanswered"
            )

    # -- reading the outcome

    def step(self, token: str) -> CallbackStep:
        return self.sagemaker.steps[token]

    def calls_of(self, token: str) -> list[HandlerCall]:
        return [call for call in self.calls if call.token == token]

    def tokens_of_execution(self, arn: str) -> list[str]:
        return [token for token in self.kinds if self.sagemaker.steps[token].execution_arn == arn]


def _no_fault(operation: str) -> BaseException:
    raise AssertionError(f"no fault is set for {operation}")


# -- running a world on its own loop -------------------------------------------------------------------------------


def run_world(
    scenario: Callable[[World], Coroutine[Any, Any, T]], *, seed: str, describe: bool = False, fillers: int = 0
) -> tuple[World, T]:
    """Run ``scenario`` on a fresh world and virtual-time loop; the worker's jitter is seeded from ``seed``, so that
    a run is the same every time. Every task is cancelled and the loop closed afterwards."""
    random.Random.seed(callback_worker.worker.retrying._JITTER, zlib.crc32(seed.encode()))
    loop = VirtualTimeLoop()
    world = World(loop, describe=describe, fillers=fillers)
    loop.set_exception_handler(lambda _, context: world.violation(f"event loop error: {context.get('message')}"))
    try:
        result = loop.run_until_complete(scenario(world))
        for replica in world.replicas:
            loop.run_until_complete(replica.leases.join())
        return world, result
    finally:
        _close(loop, world)


def _close(loop: VirtualTimeLoop, world: World) -> None:
    try:
        world.injector.clear()
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=60.0))
        for replica in world.replicas:
            replica.invoker.shutdown()
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
