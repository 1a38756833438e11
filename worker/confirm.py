"""Confirming a delivery's token with SageMaker: conclusive answers only.

SageMaker is the source of truth, and only a *definitive* answer drops a message: a listing that has the token (its
step waits, or it does not), or ``ResourceNotFound`` for the execution. An inconclusive look-up — an error that says
nothing final (access denied while an IAM change propagates, an expired token, a failed page), or a token the
listing does not have (yet: the listing may lag SageMaker's own message) — keeps the message: it is looked at again,
with backoff and holding its lease (so that the queue's receive count does not climb), until :data:`VERIFY_GRACE`
after SQS took the message; past the grace it is kept once more and left to the queue's redrive policy (the
dead-letter queue, where ``callback-worker dlq list`` shows it). Never deleted silently.

The message's age is measured on SQS's clock and this replica's monotonic clock only (its wait in the queue up to
its first receive, plus the time since this receive), so no clock step on this replica shortens the grace.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable

from structlog.contextvars import bind_contextvars

from callback_worker.worker.events import NO_EVENTS, Events, Noted, StepIdentified
from callback_worker.worker.lifecycle import Delivery, Phase
from callback_worker.worker.logs import get_logger
from callback_worker.worker.message import CallbackMessage
from callback_worker.worker.retrying import INCONCLUSIVE_BACKOFF
from callback_worker.worker.step_context import LookupFailed, NotFound, StepInfo, StepResolver

log = get_logger("worker.confirm")

#: How long after SQS took a message an inconclusive look-up is tried again before the message is left to the
#: queue's redrive policy.
VERIFY_GRACE = 300.0
NO_STEP_INFO = StepInfo()


class Verdict(enum.Enum):
    """A conclusion other than the step's own status."""

    GONE = "gone"
    """SageMaker definitively does not know the execution: nothing will ever answer for the token."""
    INCONCLUSIVE = "inconclusive"
    """Past the grace and still inconclusive: keep the message for the redrive policy."""


#: Error codes by which SageMaker says the caller lacks a permission.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


def lookup_problem(code: str) -> str:
    """Why a token could not be verified: a refused permission is named with its fix (verification stays on)."""
    if code in ACCESS_DENIED_CODES:
        return (
            f"cannot verify the token: SageMaker denied ListPipelineExecutionSteps ({code}); grant the worker's role "
            "sagemaker:ListPipelineExecutionSteps on arn:aws:sagemaker:REGION:ACCOUNT:pipeline/*/execution/* "
            "(token verification, on by default, needs it)"
        )
    return f"cannot verify the token: SageMaker answered {code}"


class Confirmer:
    """Looks a delivery's token up until SageMaker answers conclusively, or the grace is over."""

    def __init__(
        self,
        steps: StepResolver | None,
        *,
        verify: bool,
        clock: Callable[[], float] = time.monotonic,
        grace: float = VERIFY_GRACE,
        events: Events = NO_EVENTS,
    ) -> None:
        self.steps = steps
        self.verify = verify and steps is not None
        self.clock = clock
        """The monotonic clock the lease was stamped with."""
        self.grace = grace
        self.events = events

    def mark(self) -> int:
        """Stamp taken when a delivery is received: its look-ups use only listings started after it."""
        return self.steps.mark() if self.steps is not None else 0

    def forget(self, execution_arn: str) -> None:
        """A Stopping message arrived for the execution: what was listed of it before is stale."""
        if self.steps is not None:
            self.steps.forget(execution_arn)

    async def step_or_settle(self, delivery: Delivery, message: CallbackMessage) -> StepInfo | None:
        """:meth:`confirm`, with a verdict settling the delivery: DROPPED for an execution SageMaker does not know
        (logged, counted), KEPT for an answer inconclusive past the grace; then None."""
        found = await self.confirm(delivery, message)
        if found is Verdict.GONE:
            self.events.publish(Noted("unknown_token"))
            log.error("SageMaker does not know this pipeline execution; deleting the message, nothing runs")
            delivery.enter(Phase.DROPPED)
            return None
        if found is Verdict.INCONCLUSIVE:
            delivery.enter(Phase.KEPT)
            return None
        return found

    async def confirm(self, delivery: Delivery, message: CallbackMessage) -> StepInfo | Verdict:
        """The step of the delivery's token as SageMaker lists it, or a :class:`Verdict`. Without verification
        the look-up only names the step (:data:`NO_STEP_INFO` when it cannot), and is never a verdict."""
        if self.steps is None:
            return NO_STEP_INFO
        backoff = INCONCLUSIVE_BACKOFF.start()
        newer_than = delivery.listing_mark if self.verify else None
        while True:
            found = await self._look_up(message, newer_than)
            if isinstance(found, StepInfo):
                self._identified(found)
                return found
            if not self.verify:
                return NO_STEP_INFO
            if isinstance(found, NotFound) and found.execution_gone:
                return Verdict.GONE
            why = found if isinstance(found, str) else "SageMaker does not list this callback token (yet)"
            if self.age(delivery) >= self.grace:
                log.error(f"{why}; past the grace, the message is left to the queue's redrive policy")
                return Verdict.INCONCLUSIVE
            delay = backoff.next_delay()
            log.warning(f"{why}; looking again", retry_in=round(delay, 1))
            await asyncio.sleep(delay)
            newer_than = self.steps.mark()

    def age(self, delivery: Delivery) -> float:
        """Seconds since SQS took the message, at least: its wait up to its first receive, plus this receipt."""
        received = delivery.received
        return received.waited_in_queue + max(0.0, self.clock() - delivery.lease.returned)

    async def _look_up(self, message: CallbackMessage, newer_than: int | None) -> StepInfo | NotFound | str:
        assert self.steps is not None  # noqa: S101 - checked by the caller
        try:
            return await self.steps.resolve(message.pipeline_execution_arn, message.token, newer_than)
        except LookupFailed as exc:
            if not self.verify:
                log.warning("cannot read the step context; continuing without it", error=exc.code)
                return NO_STEP_INFO
            return lookup_problem(exc.code)

    def _identified(self, info: StepInfo) -> None:
        if info.step_name is not None:
            bind_contextvars(step=info.step_name)
            self.events.publish(StepIdentified(info.step_name))
