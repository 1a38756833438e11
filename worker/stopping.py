"""Stopping a step: a Stopping message, or a step found stopping or stopped when a delivery is verified or watched.

On a replica, one Stopping delivery per token leads the stop (copies of it join it): it cancels the token's leader
here (or keeps it from starting, if it is still being verified), waits for it, and runs ``on_stop`` with the
leader's context and the newest state the leader knew — a ``Retry`` it returned, or the continuation it was woken
with — before answering the step with a Failure. With no leader here, it first confirms with SageMaker that the step
still waits (:mod:`worker.confirm`: an inconclusive answer keeps the message, and no hook runs for a token SageMaker
did not confirm), and the hook is routed with the step's name as SageMaker lists it and gets no state: a Stopping
message's own continuation fields are never trusted. A continuation that wakes to find its step stopped runs
``on_stop`` with its own state: a hook may run more than once for one stop.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from callback_worker.worker.confirm import NO_STEP_INFO, Confirmer
from callback_worker.worker.events import Events, Noted
from callback_worker.worker.handler import CallbackContext, Handler
from callback_worker.worker.invoke import Invoker, StopHookTimeout
from callback_worker.worker.lifecycle import Delivery, Phase, StopCause, context_for
from callback_worker.worker.logs import get_logger
from callback_worker.worker.message import CallbackMessage
from callback_worker.worker.outcome import failure
from callback_worker.worker.router import Router
from callback_worker.worker.settle import Settler
from callback_worker.worker.step_context import StepInfo

log = get_logger("worker.stopping")

STOPPING_REASON = "Pipeline execution is stopping; the callback step was stopped by the worker."
__all__ = ["NO_STEP_INFO", "STOPPING_REASON", "Stopper"]


class Stopper:
    """Runs stop hooks and answers stopped steps."""

    def __init__(
        self,
        *,
        settler: Settler,
        router: Router,
        invoker: Invoker,
        confirmer: Confirmer,
        events: Events,
        hook_timeout: float = 60.0,
    ) -> None:
        self.settler = settler
        self.router = router
        self.invoker = invoker
        self.confirmer = confirmer
        """Confirms, for a Stopping message with no leader here, that the step still waits."""
        self.events = events
        self.hook_timeout = hook_timeout

    async def stop_message(self, delivery: Delivery, message: CallbackMessage, leader: Delivery | None) -> None:
        """A Stopping message: stop the token's leader here (if any), run the stop hook once, answer the step."""
        self.events.publish(Noted("stop_messages"))
        delivery.latest_state = None  # a Stopping message's own continuation fields are never trusted
        if leader is not None:
            leader.request_stop(StopCause(by_message=True))
            await leader.finished()
            handed_on = leader.settled_as is Phase.REQUEUED and leader.decided is not None
            if leader.settled_as in (Phase.ANSWERED, Phase.DROPPED) or leader.hook_ran or handed_on:
                # Answered, found finished, or its decided answer handed on (that link answers the step).
                log.info("the step was answered (or found finished) before the stop reached it")
                delivery.enter(Phase.DROPPED)
                return None
        info = NO_STEP_INFO
        if leader is None or leader.context is None or leader.settled_as is Phase.KEPT:
            # No leader here, or one that never got past its verification: SageMaker has not confirmed the token.
            confirmed = await self._still_waits(delivery, message)
            if confirmed is None:
                return None
            info = confirmed
        return await self.stopped(delivery, message, StopCause("Stopping"), self._context(delivery, leader, info))

    async def stopped(
        self, delivery: Delivery, message: CallbackMessage, cause: StopCause, context: CallbackContext | None
    ) -> None:
        """The step is stopping (or stopped): run the stop hook if this delivery owns it, answer if still needed."""
        delivery.enter(Phase.STOPPING)
        self.events.publish(Noted("stopped"))
        if context is not None and delivery.handler is not None and cause.runs_stop_hook:
            await self._hook(delivery.handler, replace(context, state=delivery.latest_state))
            delivery.hook_ran = True
        if cause.needs_answer:
            return await self.settler.answer(delivery, message.token, failure(STOPPING_REASON))
        delivery.enter(Phase.STOPPED)
        return None

    def _context(self, delivery: Delivery, leader: Delivery | None, info: StepInfo) -> CallbackContext:
        """The context the stop hook gets: the leader's, with the newest state it knew (a ``Retry`` it returned, or
        the continuation it was woken with); else the Stopping message's, routed with the step SageMaker listed and
        with no state."""
        if leader is not None and leader.context is not None:
            delivery.latest_state = leader.latest_state
            delivery.handler = leader.handler
            return leader.context
        base = delivery.message
        assert base is not None  # noqa: S101 - a Stopping delivery has its message
        name, delivery.handler = self.router.route(base.arguments, base.pipeline_name, info.step_name)
        return replace(context_for(base, name, info, delivery.received.message_id), state=None)

    async def _still_waits(self, delivery: Delivery, message: CallbackMessage) -> StepInfo | None:
        """The step, if it still has to be stopped here; else None with the delivery settled (DROPPED: nothing to
        stop; KEPT: SageMaker's answer stayed inconclusive)."""
        found = await self.confirmer.step_or_settle(delivery, message)
        if found is None:
            return None
        if found.waiting or found.status == "Stopping":
            return found
        log.info("the step already has an outcome; nothing to stop", step_status=found.status)
        delivery.enter(Phase.DROPPED)
        return None

    async def _hook(self, handler: Handler, context: CallbackContext) -> None:
        try:
            if await self.invoker.stop(handler, context, limit=self.hook_timeout):
                log.info("stop hook ran")
        except asyncio.CancelledError:
            raise
        except StopHookTimeout as exc:
            log.error("stop hook timed out; answering the step anyway", error=str(exc))  # noqa: TRY400 - no traceback to show
        except Exception:
            log.exception("stop hook failed; answering the step anyway")
