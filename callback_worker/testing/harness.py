"""Run a handler through the worker's real dispatcher, in memory, and see what SageMaker saw.

:class:`CallbackHarness` builds what the daemon builds (:func:`callback_worker.worker.app.build_dispatcher`: the
router, the invoker, the lease keeper, the reporter, the step resolver and token verification) on an in-memory SQS
queue (:class:`~callback_worker.worker.memory.MemoryQueue`) and an in-memory SageMaker
(:class:`~callback_worker.testing.sagemaker.MemorySageMaker`). :meth:`CallbackHarness.run` starts a pipeline
execution of one callback step, delivers its message, and keeps delivering what the worker re-queues — a
``Retry``'s continuation, a crashed handler's next attempt — until the queue is empty, moving a virtual clock
forward to each message's due time instead of waiting. The :class:`CallbackResult` says what SageMaker saw (the
step's status, its outputs or failure reason), each continuation with its delay and state, every handler call and
every ``on_stop`` call with the context it was given.

Nothing reaches AWS and no time passes but the handler's own: a handler that retries hourly for a day runs in
milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from callback_worker.config.settings import Settings
from callback_worker.testing.sagemaker import CallbackStep, MemorySageMaker
from callback_worker.worker.app import build_dispatcher
from callback_worker.worker.clock import Clocks
from callback_worker.worker.dispatch import Dispatcher, RetryPolicy
from callback_worker.worker.handler import CallbackContext, Handler, HandlerResult, JSONValue, StopHook
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.memory import MemoryQueue
from callback_worker.worker.message import parse_message
from callback_worker.worker.report import Reporter
from callback_worker.worker.router import Router
from callback_worker.worker.signing import Keyring, process_keyring
from callback_worker.worker.step_context import StepResolver

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

#: 2026-01-01T00:00:00Z: where a :class:`VirtualClock` starts unless told otherwise.
EPOCH = 1_767_225_600.0
#: Deliveries after which a run gives up (a message kept for the redrive policy comes back for ever).
MAX_DELIVERIES = 1_000


class VirtualClock:
    """Epoch seconds that move only when told to (the harness moves it to each message's due time)."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self.now += seconds


@dataclass(frozen=True)
class Continuation:
    """The worker re-queued the message to call the handler again later."""

    kind: Literal["retry", "crash"]
    """``retry``: the handler returned or raised :class:`~callback_worker.Retry`; ``crash``: it raised another
    exception, and this is its next attempt."""
    delay: float
    """Seconds until the next call."""
    state: JSONValue
    """The state the next call gets as ``context.state``."""
    attempt: int
    """The next call's ``context.attempt``."""


@dataclass
class CallbackResult:
    """What one run came to."""

    status: str
    """The step's status in SageMaker: ``Succeeded``, ``Failed``, ``Stopped``, or ``Executing`` if unanswered."""
    outputs: dict[str, str] | None
    """The outputs SageMaker got with the Success, as text (``3`` becomes ``"3"``, ``True`` ``"true"``)."""
    failure_reason: str | None
    """The reason SageMaker got with the Failure."""
    continuations: list[Continuation]
    calls: list[CallbackContext]
    """The context of every handler call, in order."""
    stop_calls: list[CallbackContext]
    """The context of every ``on_stop`` call, in order."""
    elapsed: float
    """Virtual seconds from the step's start to the end of the run."""
    step: CallbackStep = field(repr=False)
    sagemaker: MemorySageMaker = field(repr=False)


class _Recorder(Invoker):
    """The worker's invoker, noting the context of each handler and stop-hook call."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.calls: list[CallbackContext] = []
        self.stops: list[CallbackContext] = []

    async def call(self, handler: Handler, context: CallbackContext) -> HandlerResult:
        self.calls.append(context)
        return await super().call(handler, context)

    async def stop(self, handler: Handler, context: CallbackContext, limit: float) -> bool:
        if isinstance(handler, StopHook):
            self.stops.append(context)
        return await super().stop(handler, context, limit)


class _Queue(MemoryQueue):
    """The in-memory queue, noting each body the worker sends."""

    def __init__(self, clock: VirtualClock, visibility_timeout: int) -> None:
        super().__init__(clock, visibility_timeout=visibility_timeout)
        self.sent: list[str] = []

    async def send(self, body: str, delay: int = 0) -> str:
        self.sent.append(body)
        return await super().send(body, delay)


class CallbackHarness:
    """Runs ``handler`` (registered as ``name``) through the worker's dispatcher; see the module docstring.

    ``max_attempts`` and ``retry_backoff`` default to the worker's defaults (``CALLBACK_WORKER_MAX_ATTEMPTS``,
    ``CALLBACK_WORKER_RETRY_BACKOFF``); ``verify`` is ``CALLBACK_WORKER_VERIFY_TOKENS``; with ``step_context`` the
    context carries the step's name and the execution's experiment, as ``CALLBACK_WORKER_STEP_CONTEXT`` does.
    ``clock`` may be shared with the handler, which then sees the virtual time.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        name: str = "handler",
        max_attempts: int | None = None,
        retry_backoff: float | None = None,
        verify: bool = True,
        step_context: bool = False,
        clock: VirtualClock | None = None,
        visibility_timeout: int | None = None,
    ) -> None:
        self.handler = handler
        self.name = name
        self.retry = RetryPolicy(
            max_attempts if max_attempts is not None else _default("max_attempts"),
            retry_backoff if retry_backoff is not None else _default("retry_backoff"),
        )
        self.verify = verify
        self.step_context = step_context
        self.clock = clock or VirtualClock()
        self.visibility_timeout = (
            visibility_timeout if visibility_timeout is not None else _default("visibility_timeout")
        )

    def run_sync(self, arguments: Mapping[str, JSONValue] | None = None, **options: Any) -> CallbackResult:
        """:meth:`run` from synchronous code (a plain pytest test)."""
        return asyncio.run(self.run(arguments, **options))

    async def run(
        self,
        arguments: Mapping[str, JSONValue] | None = None,
        *,
        pipeline: str = "test-pipeline",
        step: str = "CallbackStep",
        stop_after_calls: int | None = None,
        max_calls: int = 100,
    ) -> CallbackResult:
        """Start a step with ``arguments`` and deliver until nothing is left in the queue, or the handler was called
        ``max_calls`` times without an answer. ``stop_after_calls=n`` stops the pipeline once the handler's n-th call
        has returned (while it waits for its next call): the worker runs ``on_stop`` and answers the step."""
        queue = _Queue(self.clock, self.visibility_timeout)
        world = _World(queue, MemorySageMaker(queue), _Recorder(threads=2))
        keyring = process_keyring()  # the worker's links, sealed and read back as a keyed deployment's are
        dispatcher = self._dispatcher(world, keyring)
        started = self.clock()
        callback = world.sagemaker.start(arguments or {}, pipeline=pipeline, step=step)
        try:
            await self._deliver(world, dispatcher, callback, stop_after_calls, max_calls)
        finally:
            world.invoker.shutdown()
        return CallbackResult(
            status=callback.status,
            outputs=callback.outputs,
            failure_reason=callback.failure_reason,
            continuations=continuations(queue.sent, keyring),
            calls=list(world.invoker.calls),
            stop_calls=list(world.invoker.stops),
            elapsed=self.clock() - started,
            step=callback,
            sagemaker=world.sagemaker,
        )

    def _dispatcher(self, world: _World, keyring: Keyring) -> Dispatcher:
        client = cast("SageMakerClient", world.sagemaker)
        return build_dispatcher(
            queue=world.queue,
            leases=LeaseKeeper(world.queue, world.queue.visibility_timeout, self.clock),
            reporter=Reporter(client),
            router=Router({self.name: self.handler}, self.name, "handler", {}),
            invoker=world.invoker,
            retry=self.retry,
            steps=StepResolver(client, describe=self.step_context),
            verify=self.verify,
            clocks=Clocks(monotonic=self.clock, wall=self.clock),
            keyring=keyring,
        )

    async def _deliver(
        self, world: _World, dispatcher: Dispatcher, callback: CallbackStep, stop_after: int | None, max_calls: int
    ) -> None:
        calls = world.invoker.calls
        for _ in range(MAX_DELIVERIES):
            execution = world.sagemaker.executions[callback.execution_arn]
            if stop_after is not None and len(calls) >= stop_after and execution.status == "Executing":
                world.sagemaker.stop(callback.execution_arn)
            live = world.queue.live()
            if not live or (len(calls) >= max_calls and callback.status == "Executing"):
                return
            due = min(message.visible_at for message in live)
            self.clock.advance(max(0.0, due - self.clock()))
            for received in await world.queue.receive(10):
                await dispatcher.handle(received)


@dataclass(frozen=True)
class _World:
    queue: _Queue
    sagemaker: MemorySageMaker
    invoker: _Recorder


def continuations(sent: list[str], keyring: Keyring) -> list[Continuation]:
    """The continuations among the bodies the worker sent: a link whose handler call count or attempt grew (a link
    that only waits on, a hop of a long delay, or a handed-on answer is none)."""
    found: list[Continuation] = []
    attempt, count = 1, 0
    for body in sent:
        link = parse_message(body, keyring).continuation
        if link.answer is not None:
            continue
        if link.continuations > count or link.attempt > attempt:
            kind: Literal["retry", "crash"] = "retry" if link.continuations > count else "crash"
            delay = link.wait if link.wait is not None else 0.0
            found.append(Continuation(kind, delay, link.state, link.attempt))
        attempt, count = link.attempt, link.continuations
    return found


def _default(setting: str) -> Any:
    return Settings.model_fields[setting].default
