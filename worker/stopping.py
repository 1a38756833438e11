"""Stopping a step: a Stopping message, or a step found stopping or stopped when a delivery is verified or watched.

On a replica, one Stopping delivery per token leads the stop (copies of it join it): it cancels the token's leader
here (or keeps it from starting, if it is still being verified), waits for it, and runs ``on_stop`` with the
leader's context and the newest state the leader knew — a ``Retry`` it returned, or the continuation it was woken
with — before answering the step with a Failure. With no leader here, it first checks with SageMaker that the step
still waits (a step already answered has nothing to stop), and the hook gets no state. A continuation that wakes to
find its step stopped runs ``on_stop`` with its own state: a hook may run more than once for one stop.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from worker.events import Events, Noted
from worker.handler import CallbackContext, Handler
from worker.invoke import Invoker
from worker.lifecycle import Delivery, Phase, StopCause, context_for
from worker.logs import get_logger
from worker.message import CallbackMessage
from worker.outcome import failure
from worker.router import Router
from worker.settle import Settler
from worker.step_context import LookupFailed, StepInfo, StepResolver

log = get_logger("worker.stopping")

STOPPING_REASON = "Pipeline execution is stopping; the callback step was stopped by the worker."
NO_STEP_INFO = StepInfo()


class Stopper:
    """Runs stop hooks and answers stopped steps."""

    def __init__(
        self,
        *,
        settler: Settler,
        router: Router,
        invoker: Invoker,
        steps: StepResolver | None,
        verify_max_age: float | None,
        events: Events,
        hook_timeout: float = 60.0,
    ) -> None:
        self.settler = settler
        self.router = router
        self.invoker = invoker
        self.steps = steps
        self.verify_max_age = verify_max_age
        """How old a listing may be when a Stopping message without a leader is checked; None: not checked."""
        self.events = events
        self.hook_timeout = hook_timeout

    async def stop_message(self, delivery: Delivery, message: CallbackMessage, leader: Delivery | None) -> None:
        """A Stopping message: stop the token's leader here (if any), run the stop hook once, answer the step."""
        self.events.publish(Noted("stop_messages"))
        if leader is not None:
            leader.request_stop(StopCause(by_message=True))
            await leader.finished()
            if leader.settled_as in (Phase.ANSWERED, Phase.DROPPED) or leader.hook_ran:
                log.info("the step was answered (or found finished) before the stop reached it")
                return delivery.enter(Phase.DROPPED)
        if (leader is None or leader.settled_as is Phase.KEPT) and not await self._still_waits(message):
            return delivery.enter(Phase.DROPPED)
        return await self.stopped(delivery, message, StopCause("Stopping"), self._context(delivery, leader))

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
        return delivery.enter(Phase.STOPPED)

    def _context(self, delivery: Delivery, leader: Delivery | None) -> CallbackContext:
        """The context the stop hook gets: the leader's, with the newest state it knew (a ``Retry`` it returned, or
        the continuation it was woken with); else this message's."""
        if leader is not None:
            delivery.latest_state = leader.latest_state
            if leader.context is not None:
                delivery.handler = leader.handler
                return leader.context
        base = leader.message if leader is not None and leader.message is not None else delivery.message
        assert base is not None  # noqa: S101 - a Stopping delivery has its message
        name, delivery.handler = self.router.route(base.arguments, base.pipeline_name, None)
        return context_for(base, name, NO_STEP_INFO, delivery.received.message_id)

    async def _still_waits(self, message: CallbackMessage) -> bool:
        """Whether a Stopping message with no leader here still has a step to answer."""
        if self.steps is None or self.verify_max_age is None:
            return True
        try:
            info = await self.steps.resolve(message.pipeline_execution_arn, message.token, self.verify_max_age)
        except LookupFailed as exc:
            log.warning("cannot check the step before stopping it; stopping it anyway", error=exc.code)
            return True
        if info is None:
            log.error("SageMaker does not know this callback token; deleting the Stopping message")
            return False
        if info.waiting or info.status == "Stopping":
            return True
        log.info("the step already has an outcome; nothing to stop", step_status=info.status)
        return False

    async def _hook(self, handler: Handler, context: CallbackContext) -> None:
        try:
            async with asyncio.timeout(self.hook_timeout):
                if await self.invoker.stop(handler, context):
                    log.info("stop hook ran")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stop hook failed; answering the step anyway")
