"""Settling a delivery's outcome: answering SageMaker, re-queueing the next link of a chain, and acknowledging
(deleting) the message once its outcome is stored.

Before a continuation is sent, SQS itself confirms that this delivery still holds its message (a visibility change
with its receipt handle): if the lease lapsed and another consumer received the message meanwhile, that one carries
the chain on, and this one sends nothing. Storing an outcome that was decided — a re-queued link and the delete that
follows it, the delete after an answer — is finished even when a shutdown arrives meanwhile: cut short, a re-queue
would leave two links of one chain (the new one sent, the old one released). An answer is not shielded: cut short,
the message is redelivered and answered again with the same ``ClientRequestToken``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from worker.events import Events, Noted, Reported
from worker.lease import LeaseKeeper
from worker.lifecycle import Delivery, Disposition, Phase
from worker.logs import get_logger
from worker.message import CallbackMessage, Continuation
from worker.outcome import Failure, Outcome, failure
from worker.queue import BatchEntryError, Queue
from worker.report import Reporter, ReportResult
from worker.requeue import Requeuer
from worker.sqs import with_retries
from worker.step_context import StepResolver
from worker.tokens import Tokens

log = get_logger("worker.settle")
T = TypeVar("T")

#: Seconds a shutdown waits for an outcome being stored (a re-queue, a delete) before it gives up on it.
SHUTDOWN_SETTLE_LIMIT = 15.0


def chain_of(delivery: Delivery, message: CallbackMessage) -> str:
    """The id of the continuation chain a delivery belongs to: the message id of the chain's first message."""
    return message.continuation.origin_message_id or delivery.received.message_id


class Settler:
    """Stores outcomes: answers, next links and deletes."""

    def __init__(
        self,
        *,
        queue: Queue,
        reporter: Reporter,
        requeuer: Requeuer,
        tokens: Tokens,
        events: Events,
        leases: LeaseKeeper,
        steps: StepResolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.leases = leases
        self.reporter = reporter
        self.requeuer = requeuer
        self.tokens = tokens
        self.events = events
        self.steps = steps
        self.clock = clock

    async def answer(self, delivery: Delivery, token: str, outcome: Outcome) -> None:
        """Report ``outcome``; ANSWERED once SageMaker has it (or had one already, or does not know the token),
        KEPT if it refused the request itself."""
        delivery.enter(Phase.ANSWERING)
        result = await self.reporter.report(token, outcome)
        kind = type(outcome).__name__.lower()
        self.events.publish(Reported(kind, result.value))
        if result is ReportResult.ACCEPTED:
            self.events.publish(Noted(kind))
            log.info(
                "step answered", outcome=kind, **({"reason": outcome.reason} if isinstance(outcome, Failure) else {})
            )
        elif result is ReportResult.ALREADY_DONE:
            self.events.publish(Noted("already_done"))
            log.info("step already had an outcome", outcome=kind)
        elif result is ReportResult.UNKNOWN_TOKEN:
            self.events.publish(Noted("unknown_token"))
            log.error("SageMaker does not know this callback token; deleting the message")
        else:
            self.events.publish(Noted("rejected"))
            return delivery.enter(Phase.KEPT)
        self.tokens.remember_answer(token)
        if self.steps is not None and delivery.message is not None:
            self.steps.forget(delivery.message.pipeline_execution_arn)  # a copy arriving now must not see Executing
        return delivery.enter(Phase.ANSWERED)

    async def requeue(self, delivery: Delivery, message: CallbackMessage, continuation: Continuation) -> None:
        """Send ``continuation`` as the chain's next link (REQUEUED); if it cannot be, answer a Failure naming why."""
        chain = chain_of(delivery, message)
        link = replace(continuation, origin_message_id=chain, link=message.continuation.link + 1)
        if not await self.leases.confirm(delivery.lease):
            log.warning("this message was delivered again elsewhere (its lease lapsed); the other delivery continues")
            return delivery.enter(Phase.KEPT)
        problem = await self.finish_despite_shutdown(delivery, self.requeuer.send(message, link))
        if problem is not None:
            if delivery.interrupted:  # shutting down: the message is released, and runs again elsewhere
                raise asyncio.CancelledError
            return await self.answer(delivery, message.token, failure(problem))
        self.tokens.advance_chain(chain, link.link)
        return delivery.enter(Phase.REQUEUED)

    async def acknowledge(self, delivery: Delivery) -> None:
        """Delete a settled message (retrying what SQS may yet accept); a kept one is let go to reappear."""
        if delivery.disposition is Disposition.KEEP:
            return delivery.enter(Phase.LEFT)
        await self.finish_despite_shutdown(delivery, self._delete(delivery))
        return delivery.enter(Phase.ACKNOWLEDGED)

    async def _delete(self, delivery: Delivery) -> None:
        """Delete the message. The old link of a re-queued chain is deleted for as long as its lease lasts: back in
        the queue, another replica would run it from the old state beside the new link."""
        handle = delivery.received.receipt_handle
        while True:
            try:
                return await with_retries(lambda: self.queue.delete(handle))
            except Exception as exc:  # noqa: BLE001 - retries are spent; decide whether to go on
                error = f"{type(exc).__name__}: {exc}"
                if not self._keeps_deleting(delivery, exc):
                    log.error("delete failed; the message will be delivered again", error=error)  # noqa: TRY400
                    return None
                log.warning("delete of a re-queued link still failing; retrying while its lease lasts", error=error)

    def _keeps_deleting(self, delivery: Delivery, exc: Exception) -> bool:
        lease = delivery.lease
        return (
            delivery.settled_as is Phase.REQUEUED
            and not delivery.interrupted
            and not lease.lost
            and not (isinstance(exc, BatchEntryError) and not exc.transient)
            and self.clock() < lease.budget_end
        )

    @staticmethod
    async def finish_despite_shutdown(delivery: Delivery, work: Awaitable[T]) -> T:
        """Await ``work`` to its end even if the shutdown cancels this task meanwhile (for at most
        ``SHUTDOWN_SETTLE_LIMIT`` seconds more); the cancellation is taken up again once the delivery is
        acknowledged (``delivery.interrupted``)."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            delivery.interrupted = True
        try:
            async with asyncio.timeout(SHUTDOWN_SETTLE_LIMIT):
                return await task
        except TimeoutError:
            raise asyncio.CancelledError from None
