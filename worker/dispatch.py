"""Handling one delivery, top to bottom: parse, verify with SageMaker, run the handler under lease, settle the
outcome, acknowledge. The phases and transitions it follows are :mod:`worker.lifecycle`; storing outcomes is
:mod:`worker.settle`, stopping steps :mod:`worker.stopping`, what one replica remembers of tokens :mod:`worker.tokens`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from structlog.contextvars import bind_contextvars, reset_contextvars

from callback_worker.worker.clock import SYSTEM_CLOCKS, Clocks
from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.events import (
    NO_EVENTS,
    DeliveryEnded,
    DeliveryIdentified,
    DeliveryStarted,
    Events,
    HandlerCall,
    HandlerFinished,
    Noted,
    Settled,
)
from callback_worker.worker.handler import CallbackContext, Fail, Handler, HandlerResult, Retry
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.lifecycle import Delivery, Disposition, Phase, context_for
from callback_worker.worker.logs import current_token, get_logger, mask_token_like, redact_token, scrub
from callback_worker.worker.message import CallbackMessage, Continuation, Status, parse_message
from callback_worker.worker.outcome import failure, success
from callback_worker.worker.queue import ReceivedMessage
from callback_worker.worker.router import Router
from callback_worker.worker.settle import Settler, chain_of
from callback_worker.worker.signing import Keyring
from callback_worker.worker.step_context import StepInfo
from callback_worker.worker.stopping import STOPPING_REASON, Stopper
from callback_worker.worker.tokens import TokenRecord, Tokens
from callback_worker.worker.verify import Verifier

log = get_logger("worker.dispatch")

#: A continuation received this early still runs now (SQS's timestamps are whole milliseconds, its delays whole
#: seconds; and a link of an earlier version, timed by a replica's wall clock, meets clock skew between replicas).
EARLY_TOLERANCE = 1.0
#: The longest a continuation may wait (a Retry's delay, or a notBefore in a body); longer is answered as a Failure.
MAX_CONTINUATION_WAIT = 7 * 86_400
MAX_WAIT_TEXT = "7 days"
_PREVIEW = 120
__all__ = ["STOPPING_REASON", "Dispatcher", "RetryPolicy", "lease_exhausted_reason"]


def lease_exhausted_reason(hours: float) -> str:
    return (
        f"The handler ran {hours:.1f} h on one SQS receipt and was cancelled: SQS keeps a received message hidden "
        "at most 12 hours. Long waits should return Retry, so that the message is re-queued."
    )


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
        leases: LeaseKeeper,
        router: Router,
        invoker: Invoker,
        retry: RetryPolicy,
        tokens: Tokens,
        settler: Settler,
        stopper: Stopper,
        verifier: Verifier,
        keyring: Keyring,
        clocks: Clocks = SYSTEM_CLOCKS,
        events: Events = NO_EVENTS,
    ) -> None:
        """Built by :func:`worker.app.build_dispatcher`; ``tokens`` is the one memory the parts share; ``keyring``
        authenticates continuations (the requeuer's, which seals them)."""
        self.leases = leases
        self.router = router
        self.invoker = invoker
        self.retry = retry
        self.tokens = tokens
        self.settler = settler
        self.stopper = stopper
        self.verifier = verifier
        self.verify = verifier.verify
        self.confirmer = verifier.confirmer
        self.clocks = clocks
        self.events = events
        self.keyring = keyring

    async def handle(self, received: ReceivedMessage) -> None:
        """Handle one delivery. Never raises but CancelledError, which leaves the lease for the runtime to release."""
        delivery = Delivery(received, listing_mark=self.confirmer.mark())
        delivery.lease = self.leases.add(received, on_exhausted=delivery.exhaust_lease)
        self.events.publish(Noted("received"))
        bound = bind_contextvars(message_id=received.message_id, receive_count=received.receive_count)
        try:
            with self.events.span(DeliveryStarted(received.message_id, received.receive_count)):
                try:
                    await self._settle_fenced(delivery)
                    self.events.publish(Settled(delivery.phase.value))
                    await self.settler.acknowledge(delivery)
                finally:
                    settled = delivery.settled_as.value if delivery.settled_as is not None else None
                    self.events.publish(DeliveryEnded(received.message_id, settled))
        finally:
            reset_contextvars(**bound)
        self.leases.remove(delivery.lease)  # not when cancelled: the runtime releases what is left
        if delivery.interrupted:
            raise asyncio.CancelledError

    async def _settle_fenced(self, delivery: Delivery) -> None:
        try:
            await self._settle(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # the per-message fence: one message's bug never stops the worker
            log.exception("unexpected error while handling a message; it will be delivered again")
            delivery.abandon()
        finally:
            if delivery.message is not None:
                self.tokens.leave(delivery, delivery.message)

    async def _settle(self, delivery: Delivery) -> None:
        try:
            message = parse_message(delivery.received.body, self.keyring)
        except MalformedMessage as exc:
            return await self._malformed(delivery, exc)
        record = self.tokens.enter(delivery, message)
        delivery.message, delivery.latest_state = message, message.continuation.state
        self._bind(message)
        if message.distrusted is not None:
            self.events.publish(Noted("unauthenticated"))
            log.warning("continuation set aside; handled as a fresh delivery of its token", reason=message.distrusted)
        if message.continuation.answer is not None:
            log.info("a decided answer was handed on to this delivery; reporting it, no handler runs")
            self.tokens.advance_chain(message.token, chain_of(delivery, message), message.continuation.link)
            return await self.settler.answer(delivery, message.token, message.continuation.answer)
        if message.status is Status.STOPPING:
            return await self._stopping(delivery, message, record)
        while record.leader is not delivery and record.leader is not None:
            leader = record.leader
            if not self._succeeds(delivery, message, leader):
                return await self._join(delivery, leader)
            # The leader's own chain, a later link: the leader's link is stale now (it must not start its handler
            # if it has not yet); this one leads once the leader has let go.
            self.tokens.advance_chain(message.token, chain_of(delivery, message), message.continuation.link)
            await leader.finished()
            self.tokens.claim(delivery, message)
        if self._needless(delivery, message, stopping=record.stopping):
            return delivery.enter(Phase.DROPPED)
        return await self._verify_then_run(delivery, message)

    async def _stopping(self, delivery: Delivery, message: CallbackMessage, record: TokenRecord) -> None:
        self.confirmer.forget(message.pipeline_execution_arn)  # what was listed before the stop is stale
        if record.stopper is not delivery and record.stopper is not None:
            return await self._join(delivery, record.stopper)
        return await self.stopper.stop_message(delivery, message, record.leader)

    def _needless(self, delivery: Delivery, message: CallbackMessage, *, stopping: bool) -> bool:
        """A copy this replica can settle on sight: its token answered or being stopped here, or a link of its
        chain older than one seen here."""
        if stopping and not message.continuation.link:
            # A continuation link is verified instead: its stop hook has a state to stop.
            log.info("the step is being stopped here; dropping this copy")
        elif self.tokens.answered(message.token) and not (self.verify and message.continuation.link):
            # A continuation of a token answered here is verified instead: if its step was stopped, the stop hook
            # runs with the continuation's state.
            log.info("token answered here already; dropping this copy")
        elif self.tokens.is_stale(message, chain_of(delivery, message)):
            log.warning("a later link of this continuation chain was seen here; dropping this stale link")
        else:
            return False
        return True

    async def _verify_then_run(self, delivery: Delivery, message: CallbackMessage) -> None:
        delivery.enter(Phase.VERIFYING)
        info = await self.verifier.check(delivery, message)
        if info is None:
            return None
        if self._overtaken(delivery, message):
            return delivery.enter(Phase.DROPPED)
        self.tokens.advance_chain(message.token, chain_of(delivery, message), message.continuation.link)
        if delivery.stop_cause is not None:
            log.info("a Stopping message arrived while the token was verified; the handler does not start")
            return delivery.enter(Phase.STOPPED)
        wait = self._due_in(delivery, message.continuation)
        if wait > MAX_CONTINUATION_WAIT:  # forged, or a handler's mistake: it would hop every 15 minutes for ever
            reason = f"the continuation is due {wait / 86_400:.0f} days ahead; at most {MAX_WAIT_TEXT} allowed"
            return await self.settler.answer(delivery, message.token, failure(reason))
        if wait > EARLY_TOLERANCE:
            delivery.enter(Phase.WAITING)
            hop = replace(message.continuation, wait=wait, not_before=self.clocks.wall() + wait)
            return await self.settler.requeue(delivery, message, hop)
        return await self._run(delivery, message, info)

    def _overtaken(self, delivery: Delivery, message: CallbackMessage) -> bool:
        """While this delivery was verified, its token was answered here or a later link of its chain arrived."""
        if self.tokens.answered(message.token):
            log.info("token answered here while this copy was verified; dropping it")
            return True
        if self.tokens.is_stale(message, chain_of(delivery, message)):
            log.warning("a later link of this continuation chain arrived while this one was verified; dropping it")
            return True
        return False

    def _due_in(self, delivery: Delivery, continuation: Continuation) -> float:
        """Seconds until a received link is due. Its ``wait`` counts from when SQS took it, and what has passed
        since is measured on SQS's clock (up to its first receive) and the monotonic clock (since this receipt):
        no replica's wall clock decides it. A link of an earlier version has only its wall-clock ``notBefore``."""
        if continuation.wait is None:
            return continuation.not_before - self.clocks.wall()
        waited = delivery.received.waited_in_queue + (self.clocks.monotonic() - delivery.lease.returned)
        return continuation.wait - waited

    def _bind(self, message: CallbackMessage) -> None:
        continuation = message.continuation
        self.events.publish(
            DeliveryIdentified(
                message.pipeline_name,
                message.execution_id,
                message.status.value,
                continuation.attempt,
                continuation.link,
            )
        )
        current_token.set(message.token)
        bind_contextvars(
            token=redact_token(message.token),
            pipeline=message.pipeline_name,
            execution_id=message.execution_id,
            status=message.status.value,
        )

    def _succeeds(self, delivery: Delivery, message: CallbackMessage, leader: Delivery) -> bool:
        """Whether ``delivery`` is a later link of the leader's chain (then it waits for the leader, not joins it)."""
        led = leader.message
        return (
            led is not None
            and chain_of(delivery, message) == chain_of(leader, led)
            and message.continuation.link > led.continuation.link
        )

    async def _join(self, delivery: Delivery, leader: Delivery) -> None:
        log.info("token already in flight here; this copy follows it")
        self.events.publish(Noted("joined"))
        # Shielded from a shutdown: the leader settles first (it may finish storing its outcome), and this copy
        # then goes the same way — released with it, or deleted with it.
        disposition = await self.settler.finish_despite_shutdown(delivery, leader.finished())
        delivery.enter(Phase.KEPT if disposition is Disposition.KEEP else Phase.JOINED)

    # -- running the handler ---------------------------------------------------------------------------------------

    async def _run(self, delivery: Delivery, message: CallbackMessage, info: StepInfo) -> None:
        name, handler = self.router.route(message.arguments, message.pipeline_name, info.step_name)
        bind_contextvars(handler=name, attempt=message.continuation.attempt)
        if handler is None:
            reason = self.router.unknown_reason(name)
            log.error("no such handler", reason=reason)
            return await self.settler.answer(delivery, message.token, failure(reason))
        context = context_for(message, name, info, delivery.received.message_id)
        delivery.context, delivery.handler = context, handler
        delivery.start(asyncio.create_task(self._call(name, handler, context)), self.clocks.monotonic())
        try:
            result = await delivery.task  # type: ignore[misc]
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker itself is shutting down
            return await self._cancelled(delivery, message)
        except Exception as exc:  # noqa: BLE001 - every handler exception becomes an outcome
            return await self._raised(delivery, message, exc)
        if isinstance(result, Retry):
            return await self._continue(delivery, message, result)
        return await self.settler.answer(delivery, message.token, success(result))

    async def _call(self, name: str, handler: Handler, context: CallbackContext) -> HandlerResult:
        """The handler call, as its own task: its span (for tracing) and its duration (for metrics)."""
        started = self.clocks.monotonic()
        try:
            with self.events.span(HandlerCall(name, context.attempt)):
                return await self.invoker.call(handler, context)
        finally:
            self.events.publish(HandlerFinished(name, self.clocks.monotonic() - started))

    async def _cancelled(self, delivery: Delivery, message: CallbackMessage) -> None:
        if delivery.lease_exhausted:
            hours = (self.clocks.monotonic() - delivery.lease.started) / 3600
            return await self.settler.answer(delivery, message.token, failure(lease_exhausted_reason(hours)))
        cause = delivery.stop_cause
        if cause is None:  # the handler cancelled itself
            return await self._crashed(delivery, message, RuntimeError("the handler was cancelled"))
        log.info("handler cancelled because the pipeline is stopping", step_status=cause.step_status)
        return await self.stopper.stopped(delivery, message, cause, delivery.context)

    async def _raised(self, delivery: Delivery, message: CallbackMessage, exc: Exception) -> None:
        if isinstance(exc, Fail):
            return await self.settler.answer(delivery, message.token, failure(exc.reason))
        if isinstance(exc, Retry):
            return await self._continue(delivery, message, exc)
        return await self._crashed(delivery, message, exc)

    async def _continue(self, delivery: Delivery, message: CallbackMessage, retry: Retry) -> None:
        delivery.latest_state = retry.state
        if delivery.stop_cause is not None:  # the stop came while the handler finished: nothing to continue
            log.info("the handler asked to be called again, but its step is being stopped")
            return await self.stopper.stopped(delivery, message, delivery.stop_cause, delivery.context)
        if retry.delay > MAX_CONTINUATION_WAIT:
            reason = f"the handler asked to wait {retry.delay / 86_400:.0f} days; at most {MAX_WAIT_TEXT} allowed"
            return await self.settler.answer(delivery, message.token, failure(reason))
        continuation = replace(
            message.continuation,
            continuations=message.continuation.continuations + 1,
            state=retry.state,
            wait=retry.delay,
            not_before=self.clocks.wall() + retry.delay,
        )
        self.events.publish(Noted("continued"))
        delivery.enter(Phase.WAITING)
        return await self.settler.requeue(delivery, message, continuation)

    async def _crashed(self, delivery: Delivery, message: CallbackMessage, exc: BaseException) -> None:
        attempt = message.continuation.attempt
        summary = f"{type(exc).__name__}: {scrub(str(exc), message.token)}"  # the reason leaves the worker
        name = delivery.context.handler_name if delivery.context is not None else "?"
        if attempt >= self.retry.max_attempts:
            log.error("handler failed on its last attempt", exc_info=exc)
            reason = f"handler {name!r} failed after {attempt} attempt(s): {summary}"
            return await self.settler.answer(delivery, message.token, failure(reason))
        delay = self.retry.delay(attempt)
        log.warning("handler failed; it will be called again", error=summary, retry_in=delay, exc_info=exc)
        self.events.publish(Noted("crashed"))
        continuation = replace(
            message.continuation, attempt=attempt + 1, wait=delay, not_before=self.clocks.wall() + delay
        )
        delivery.enter(Phase.WAITING)
        return await self.settler.requeue(delivery, message, continuation)

    # -- settling ----------------------------------------------------------------------------------------------------

    async def _malformed(self, delivery: Delivery, exc: MalformedMessage) -> None:
        self.events.publish(Noted("malformed"))
        received = delivery.received
        if exc.token is None:
            log.error(
                "malformed message without a usable token; left for the queue's redrive policy",
                reason=exc.reason,
                body_length=len(received.body),
                body_preview=mask_token_like(received.body[: _PREVIEW + 10])[:_PREVIEW],  # no token cut in half
            )
            return delivery.enter(Phase.KEPT)
        current_token.set(exc.token)
        bind_contextvars(token=redact_token(exc.token))
        log.error("malformed callback message; answering with a failure", reason=exc.reason)
        return await self.settler.answer(delivery, exc.token, failure(f"Malformed callback message: {exc.reason}"))
