"""Handling one delivery end to end: parse, route, run under lease, answer, then delete.

Every path ends in one of two dispositions. ``DELETE``: the step has its outcome (or never will need one from this
message), so the message goes. ``KEEP``: the message is left alone and reappears when its visibility runs out —
for bodies nothing can be answered for, and for outcomes SageMaker would not take. A shutdown cancels the work
instead; the runtime then makes the message visible at once.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from structlog.contextvars import bind_contextvars, reset_contextvars

from worker.errors import MalformedMessage
from worker.handler import CallbackContext, Fail, Handler, HandlerResult, Retry
from worker.invoke import Invoker
from worker.lease import Lease, LeaseKeeper
from worker.logs import current_token, get_logger, mask_token_like, redact_token
from worker.message import CallbackMessage, Continuation, Status, parse_message
from worker.outcome import Failure, Outcome, failure, success
from worker.registry import Router
from worker.report import Reporter, ReportResult
from worker.retrying import Backoff, is_transient
from worker.sqs import MAX_DELAY_SECONDS, BatchEntryError, Queue, ReceivedMessage
from worker.step_context import StepInfo, StepResolver

log = get_logger("worker.dispatch")

NO_STEP_INFO = StepInfo()
#: SQS's classic body limit; a continuation larger than this cannot be re-queued.
MAX_BODY_BYTES = 262_144
#: A continuation received this early (clock skew between replicas) still runs now.
EARLY_TOLERANCE = 1.0
#: Tokens this replica answered recently; later copies and continuations of them are not run again.
ANSWERED_MEMORY = 10_000
_PREVIEW = 120
STOPPING_REASON = "Pipeline execution is stopping; the callback step was stopped by the worker."
LEASE_EXHAUSTED_REASON = (
    "The handler ran past SQS's 12-hour visibility limit and was cancelled; "
    "long waits should return Retry so the message is re-queued."
)


class Disposition(enum.Enum):
    """What becomes of the message once handling ends."""

    DELETE = "delete"
    KEEP = "keep"


@dataclass(eq=False, slots=True)
class Running:
    """A handler task in flight on this replica, found by token when a Stopping message arrives."""

    task: asyncio.Task[HandlerResult]
    stop_requested: bool = False
    lease_exhausted: bool = False
    finished: bool = False
    _waiters: list[asyncio.Future[None]] | None = None
    """Futures of copies waiting for this one to finish; made only when one waits (rare), never per message."""

    async def wait_finished(self) -> None:
        if self.finished:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter

    def finish(self) -> None:
        self.finished = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def cancel_for_stop(self) -> None:
        self.stop_requested = True
        self.task.cancel()

    def cancel_for_lease(self) -> None:
        self.lease_exhausted = True
        self.task.cancel()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How crashed handlers are retried."""

    max_attempts: int = 3
    backoff: float = 2.0
    cap: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling, at most ``cap``."""
        return float(min(self.cap, self.backoff * 2 ** min(attempt - 1, 64)))


class Dispatcher:
    """Takes received messages one by one (concurrently) to their outcome."""

    def __init__(
        self,
        *,
        queue: Queue,
        leases: LeaseKeeper,
        reporter: Reporter,
        router: Router,
        invoker: Invoker,
        retry: RetryPolicy,
        stop_hook_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        steps: StepResolver | None = None,
    ) -> None:
        self.queue = queue
        self.leases = leases
        self.reporter = reporter
        self.router = router
        self.invoker = invoker
        self.retry = retry
        self.stop_hook_timeout = stop_hook_timeout
        self.clock = clock
        self.steps = steps
        self.running: dict[str, Running] = {}
        self.answered: OrderedDict[str, None] = OrderedDict()
        self.stats: Counter[str] = Counter()
        """Counts by event name (received, success, failure, continued, crashed, malformed, …)."""
        self.reports: Counter[tuple[str, str]] = Counter()
        """Reports by (outcome, result), for metrics."""
        self.on_handler_done: Callable[[str, float], None] | None = None
        """Called with the handler's name and its run time in seconds after every handler call."""
        self.on_settled: Callable[[], None] | None = None
        """Called (in the message's task) once its outcome is settled, before the message is deleted."""

    async def handle(self, received: ReceivedMessage) -> None:
        """Handle one delivery. Never raises but CancelledError, which leaves the lease for the runtime to release."""
        lease = self.leases.add(received)
        self.stats["received"] += 1
        bound = bind_contextvars(message_id=received.message_id, receive_count=received.receive_count)
        try:
            try:
                disposition = await self._process(received, lease)
            except asyncio.CancelledError:
                raise
            except Exception:  # the per-message fence: one message's bug never stops the worker
                log.exception("unexpected error while handling a message; it will be delivered again")
                disposition = Disposition.KEEP
            if self.on_settled is not None:
                self.on_settled()
            if disposition is Disposition.DELETE:
                await self._delete(lease)
        finally:
            reset_contextvars(**bound)
        self.leases.remove(lease)

    async def _process(self, received: ReceivedMessage, lease: Lease) -> Disposition:
        try:
            message = parse_message(received.body)
        except MalformedMessage as exc:
            return await self._malformed(received, exc)
        current_token.set(message.token)
        bind_contextvars(
            token=redact_token(message.token),
            pipeline=message.pipeline_name,
            execution_id=message.execution_id,
            status=message.status.value,
        )
        if message.status is Status.STOPPING:
            return await self._stop(message, received)
        if message.token in self.answered:
            log.info("token already answered here; dropping this copy")
            return Disposition.DELETE
        if message.continuation.not_before > self.clock() + EARLY_TOLERANCE:
            return await self._requeue(message, message.continuation, received, "waiting")
        existing = self.running.get(message.token)
        if existing is not None:
            log.info("token already in flight here; this copy waits for it and is dropped")
            await existing.wait_finished()
            return Disposition.DELETE
        return await self._route(message, received, lease)

    async def _step_info(self, message: CallbackMessage) -> StepInfo:
        if self.steps is None:
            return NO_STEP_INFO
        info = await self.steps.resolve(message.pipeline_execution_arn, message.token)
        if info.step_name is not None:
            bind_contextvars(step=info.step_name)
        return info

    async def _route(self, message: CallbackMessage, received: ReceivedMessage, lease: Lease) -> Disposition:
        info = await self._step_info(message)
        name, handler = self.router.route(message.arguments, message.pipeline_name, info.step_name)
        bind_contextvars(handler=name, attempt=message.continuation.attempt)
        if handler is None:
            reason = self.router.unknown_reason(name)
            log.error("no such handler", reason=reason)
            return await self._answer(message.token, failure(reason))
        context = self._context(message, name, info, received.message_id)
        running = Running(asyncio.create_task(self.invoker.call(handler, context)))
        if self.on_handler_done is not None:
            observe, started = self.on_handler_done, time.monotonic()
            running.task.add_done_callback(lambda _: observe(name, time.monotonic() - started))
        self.running[message.token] = running
        lease.on_exhausted = running.cancel_for_lease
        try:
            return await self._execute(message, received, context, running)
        finally:
            lease.on_exhausted = None
            del self.running[message.token]
            running.finish()

    async def _execute(
        self, message: CallbackMessage, received: ReceivedMessage, context: CallbackContext, running: Running
    ) -> Disposition:
        try:
            result = await running.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker itself is shutting down
            return await self._cancelled(message, running)
        except Exception as exc:  # noqa: BLE001 - every handler exception becomes an outcome
            return await self._raised(message, received, context, exc)
        if isinstance(result, Retry):
            return await self._continue(message, received, result)
        return await self._answer(message.token, success(result))

    async def _cancelled(self, message: CallbackMessage, running: Running) -> Disposition:
        if running.lease_exhausted:
            return await self._answer(message.token, failure(LEASE_EXHAUSTED_REASON))
        log.info("handler cancelled because the pipeline is stopping")
        self.stats["stopped"] += 1
        return Disposition.DELETE

    async def _raised(
        self, message: CallbackMessage, received: ReceivedMessage, context: CallbackContext, exc: Exception
    ) -> Disposition:
        if isinstance(exc, Fail):
            return await self._answer(message.token, failure(exc.reason))
        if isinstance(exc, Retry):
            return await self._continue(message, received, exc)
        return await self._crashed(message, received, context, exc)

    def _context(self, message: CallbackMessage, name: str, info: StepInfo, message_id: str) -> CallbackContext:
        return CallbackContext(
            token=message.token,
            pipeline_execution_arn=message.pipeline_execution_arn,
            pipeline_name=message.pipeline_name,
            execution_id=message.execution_id,
            arguments=message.arguments,
            handler_name=name,
            message_id=message_id,
            attempt=message.continuation.attempt,
            state=message.continuation.state,
            continuations=message.continuation.continuations,
            step_name=info.step_name,
            experiment_name=info.experiment_name,
            trial_name=info.trial_name,
        )

    async def _continue(self, message: CallbackMessage, received: ReceivedMessage, retry: Retry) -> Disposition:
        continuation = replace(
            message.continuation,
            continuations=message.continuation.continuations + 1,
            state=retry.state,
            not_before=self.clock() + retry.delay,
        )
        self.stats["continued"] += 1
        return await self._requeue(message, continuation, received, "continuation")

    async def _crashed(
        self, message: CallbackMessage, received: ReceivedMessage, context: CallbackContext, exc: Exception
    ) -> Disposition:
        attempt = message.continuation.attempt
        summary = f"{type(exc).__name__}: {exc}"
        if attempt >= self.retry.max_attempts:
            log.error("handler failed on its last attempt", exc_info=exc)
            reason = f"handler {context.handler_name!r} failed after {attempt} attempt(s): {summary}"
            return await self._answer(message.token, failure(reason))
        delay = self.retry.delay(attempt)
        log.warning("handler failed; it will be called again", error=summary, retry_in=delay, exc_info=exc)
        self.stats["crashed"] += 1
        continuation = replace(message.continuation, attempt=attempt + 1, not_before=self.clock() + delay)
        return await self._requeue(message, continuation, received, "crash retry")

    async def _requeue(
        self, message: CallbackMessage, continuation: Continuation, received: ReceivedMessage, why: str
    ) -> Disposition:
        """Replace this message by a new one carrying ``continuation``, due at its ``not_before``."""
        if not continuation.origin_message_id:
            continuation = replace(continuation, origin_message_id=received.message_id)
        body = message.to_body(continuation)
        if len(body.encode()) > MAX_BODY_BYTES:
            reason = f"the handler's Retry state makes a {len(body.encode())}-byte message; SQS takes {MAX_BODY_BYTES}"
            return await self._answer(message.token, failure(reason))
        delay = math.ceil(max(0.0, min(continuation.not_before - self.clock(), MAX_DELAY_SECONDS)))
        await self._aws_call(lambda: self.queue.send(body, delay))
        log.info("re-queued", reason=why, delay=delay, due_in=round(continuation.not_before - self.clock(), 1))
        return Disposition.DELETE

    async def _stop(self, message: CallbackMessage, received: ReceivedMessage) -> Disposition:
        running = self.running.get(message.token)
        if running is not None:
            running.cancel_for_stop()
            await running.wait_finished()
        info = await self._step_info(message)
        name, handler = self.router.route(message.arguments, message.pipeline_name, info.step_name)
        if handler is not None:
            await self._stop_hook(handler, self._context(message, name, info, received.message_id))
        return await self._answer(message.token, failure(STOPPING_REASON))

    async def _stop_hook(self, handler: Handler, context: CallbackContext) -> None:
        try:
            async with asyncio.timeout(self.stop_hook_timeout):
                if await self.invoker.stop(handler, context):
                    log.info("stop hook ran")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stop hook failed; answering the step anyway")

    async def _malformed(self, received: ReceivedMessage, exc: MalformedMessage) -> Disposition:
        self.stats["malformed"] += 1
        if exc.token is None:
            log.error(
                "malformed message without a usable token; left for the queue's redrive policy",
                reason=exc.reason,
                body_length=len(received.body),
                body_preview=mask_token_like(received.body[:_PREVIEW]),
            )
            return Disposition.KEEP
        current_token.set(exc.token)
        bind_contextvars(token=redact_token(exc.token))
        log.error("malformed callback message; answering with a failure", reason=exc.reason)
        return await self._answer(exc.token, failure(f"Malformed callback message: {exc.reason}"))

    async def _answer(self, token: str, outcome: Outcome) -> Disposition:
        result = await self.reporter.report(token, outcome)
        kind = type(outcome).__name__.lower()
        self.reports[(kind, result.value)] += 1
        if result is ReportResult.ACCEPTED:
            self.stats[kind] += 1
            log.info(
                "step answered", outcome=kind, **({"reason": outcome.reason} if isinstance(outcome, Failure) else {})
            )
        elif result is ReportResult.ALREADY_DONE:
            self.stats["already_done"] += 1
            log.info("step already had an outcome", outcome=kind)
        elif result is ReportResult.UNKNOWN_TOKEN:
            self.stats["unknown_token"] += 1
            log.error("SageMaker does not know this callback token; deleting the message")
        else:
            self.stats["rejected"] += 1
            return Disposition.KEEP
        self._remember(token)
        return Disposition.DELETE

    def _remember(self, token: str) -> None:
        self.answered[token] = None
        self.answered.move_to_end(token)
        while len(self.answered) > ANSWERED_MEMORY:
            self.answered.popitem(last=False)

    async def _delete(self, lease: Lease) -> None:
        """Delete the message; if SQS will not, leave it: it comes back after its visibility timeout, and a copy
        of a token answered here is dropped on sight (elsewhere, its report meets ConflictException)."""
        try:
            await self._aws_call(lambda: self.queue.delete(lease.message.receipt_handle))
        except BatchEntryError as exc:
            log.warning("delete refused; the message may be delivered again", error=exc.code)
        except Exception as exc:  # noqa: BLE001 - retries are spent; the lease must still be let go
            log.error(  # noqa: TRY400 - an outage, not a bug: no traceback
                "delete failed; the message will be delivered again", error=f"{type(exc).__name__}: {exc}"
            )

    async def _aws_call(self, call: Callable[[], Awaitable[object]]) -> None:
        """Run an SQS call, retrying transient errors with backoff a few times before giving up."""
        backoff = Backoff(base=0.2, cap=5.0)
        for attempt in range(6):
            try:
                await call()
            except Exception as exc:
                if not is_transient(exc) or attempt == 5:
                    raise
                log.warning("SQS call failed; retrying", error=f"{type(exc).__name__}: {exc}")
                await backoff.sleep()
            else:
                return
