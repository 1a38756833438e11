"""Verifying a delivery's token with SageMaker before its handler runs (``CALLBACK_WORKER_VERIFY_TOKENS``).

SageMaker is the source of truth: a token it does not list runs nothing (a message younger than
:data:`UNKNOWN_TOKEN_GRACE` gets one more look first, since the listing may lag); a step that already has an outcome
runs nothing; a step stopping or stopped runs the stop hook instead. Without verification the look-up only reads the
step's context (name, experiment), and a failed look-up does not keep the handler from running.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from structlog.contextvars import bind_contextvars

from worker.events import NO_EVENTS, Events, Noted, StepIdentified
from worker.lifecycle import Delivery, Phase, StopCause, context_for
from worker.logs import get_logger
from worker.message import CallbackMessage
from worker.router import Router
from worker.step_context import LookupFailed, StepInfo, StepResolver
from worker.stopping import NO_STEP_INFO, Stopper

log = get_logger("worker.verify")

#: How old a listing of an execution's steps may be when a token is verified against it.
VERIFY_MAX_AGE = 2.0
#: A message younger than this whose token SageMaker does not list is looked at once more before it is deleted.
UNKNOWN_TOKEN_GRACE = 60.0


class Verifier:
    """Asks SageMaker about a delivery's step; settles the delivery itself when the step does not wait for it."""

    def __init__(
        self,
        steps: StepResolver | None,
        router: Router,
        stopper: Stopper,
        *,
        verify: bool,
        verify_max_age: float = VERIFY_MAX_AGE,
        clock: Callable[[], float] = time.time,
        events: Events = NO_EVENTS,
    ) -> None:
        self.steps = steps
        self.verify = verify and steps is not None
        self.verify_max_age = verify_max_age if self.verify else math.inf
        self.router = router
        self.stopper = stopper
        self.clock = clock
        self.events = events

    async def check(self, delivery: Delivery, message: CallbackMessage) -> StepInfo | None:
        """What SageMaker says about the step; None once the delivery is settled because the step does not wait."""
        if self.steps is None:
            return NO_STEP_INFO
        try:
            info = await self.steps.resolve(message.pipeline_execution_arn, message.token, self.verify_max_age)
        except LookupFailed as exc:
            return self._lookup_failed(delivery, exc)
        if info is None:
            if not self.verify:
                return NO_STEP_INFO
            self._unknown(delivery)
            return None
        if info.step_name is not None:
            bind_contextvars(step=info.step_name)
            self.events.publish(StepIdentified(info.step_name))
        if not self.verify or info.waiting:
            return info
        await self._step_done(delivery, message, info)
        return None

    def _unknown(self, delivery: Delivery) -> None:
        """SageMaker does not know the token. A message just sent gets one more look after its visibility timeout
        (SageMaker's listing may lag its own message); then it is deleted, and no handler ever runs for it."""
        received = delivery.received
        if received.receive_count < 2 and self.clock() - received.sent_time < UNKNOWN_TOKEN_GRACE:
            log.warning("SageMaker does not know this callback token yet; looking again after the visibility timeout")
            return delivery.enter(Phase.KEPT)
        self.events.publish(Noted("unknown_token"))
        log.error("SageMaker does not know this callback token; deleting the message, no handler runs")
        return delivery.enter(Phase.DROPPED)

    def _lookup_failed(self, delivery: Delivery, exc: LookupFailed) -> StepInfo | None:
        if not self.verify:
            log.error("cannot read the step context; continuing without it", error=exc.code)
            return NO_STEP_INFO
        log.error(
            "cannot verify the token with SageMaker; the message will be delivered again "
            "(grant sagemaker:ListPipelineExecutionSteps, or set CALLBACK_WORKER_VERIFY_TOKENS=false)",
            error=exc.code,
        )
        delivery.enter(Phase.KEPT)
        return None

    async def _step_done(self, delivery: Delivery, message: CallbackMessage, info: StepInfo) -> None:
        """The step no longer waits for this delivery: no handler runs."""
        status = info.status or ""
        if status not in ("Stopping", "Stopped"):
            log.info("the step already has an outcome; deleting the message, no handler runs", step_status=status)
            self.events.publish(Noted("already_done"))
            return delivery.enter(Phase.DROPPED)
        context = None
        # Whoever answers a Stopping step runs the stop hook first; a continuation of a step already stopped runs
        # it too, since its state may name work still going on.
        if status == "Stopping" or message.continuation.link > 0:
            name, delivery.handler = self.router.route(message.arguments, message.pipeline_name, info.step_name)
            context = context_for(message, name, info, delivery.received.message_id)
        log.info("the step is stopping or stopped; no handler runs", step_status=status)
        return await self.stopper.stopped(delivery, message, StopCause(status), context)
