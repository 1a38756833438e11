"""Verifying a delivery's token with SageMaker before its handler runs (``CALLBACK_WORKER_VERIFY_TOKENS``).

SageMaker is the source of truth (:mod:`worker.confirm` asks it, and waits out inconclusive answers): an execution
SageMaker definitively does not know runs nothing and its message is deleted; a step that already has an outcome
runs nothing; a step stopping or stopped runs the stop hook instead — routed as the step was, with the state of the
continuation that found it so. Without verification the look-up only reads the step's context (name, experiment),
and a failed look-up does not keep the handler from running.
"""

from __future__ import annotations

from callback_worker.worker.confirm import Confirmer
from callback_worker.worker.events import NO_EVENTS, Events, Noted
from callback_worker.worker.lifecycle import Delivery, Phase, StopCause, context_for
from callback_worker.worker.logs import get_logger
from callback_worker.worker.message import CallbackMessage
from callback_worker.worker.router import Router
from callback_worker.worker.step_context import StepInfo
from callback_worker.worker.stopping import Stopper

log = get_logger("worker.verify")


class Verifier:
    """Asks SageMaker about a delivery's step; settles the delivery itself when the step does not wait for it."""

    def __init__(self, confirmer: Confirmer, router: Router, stopper: Stopper, *, events: Events = NO_EVENTS) -> None:
        self.confirmer = confirmer
        self.verify = confirmer.verify
        self.router = router
        self.stopper = stopper
        self.events = events

    async def check(self, delivery: Delivery, message: CallbackMessage) -> StepInfo | None:
        """What SageMaker says about the step; None once the delivery is settled because the step does not wait
        (or SageMaker's answer stayed inconclusive past the grace)."""
        found = await self.confirmer.step_or_settle(delivery, message)
        if found is None or not self.verify or found.waiting:
            return found
        await self._step_done(delivery, message, found)
        return None

    async def _step_done(self, delivery: Delivery, message: CallbackMessage, info: StepInfo) -> None:
        """The step no longer waits for this delivery: no handler runs."""
        status = info.status or ""
        if status not in ("Stopping", "Stopped"):
            log.info("the step already has an outcome; deleting the message, no handler runs", step_status=status)
            self.events.publish(Noted("already_done"))
            delivery.enter(Phase.DROPPED)
            return None
        context = None
        # Whoever answers a Stopping step runs the stop hook first; a continuation of a step already stopped runs
        # it too, since its state may name work still going on.
        if status == "Stopping" or message.continuation.link > 0:
            name, delivery.handler = self.router.route(message.arguments, message.pipeline_name, info.step_name)
            context = context_for(message, name, info, delivery.received.message_id)
        log.info("the step is stopping or stopped; no handler runs", step_status=status)
        return await self.stopper.stopped(delivery, message, StopCause(status), context)
