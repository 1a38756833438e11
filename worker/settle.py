"""Settling a delivery's outcome: answering SageMaker, re-queueing the next link of a chain, and acknowledging
(deleting) the message once its outcome is stored.

**A decided answer is durable.** An answer is reported until SageMaker takes it or says something definitive; every
other error is retried (:mod:`worker.report`). If the delivery must let go first — a shutdown cancels it, or the
receipt's 12 hours run out — the answer is *handed on*: sent as the chain's next link carrying the answer instead of
a state, and the message deleted. The delivery of that link reports the answer and never runs the handler. What is
left: a kill -9 between the handler's return and the hand-off, or SQS refusing the hand-off's send for
``SHUTDOWN_SETTLE_LIMIT`` seconds, releases the message with no answer, and the handler runs again.

Before a continuation is sent, SQS itself confirms that this delivery still holds its message (a visibility change
with its receipt handle): if the lease lapsed and another consumer received the message meanwhile, that one carries
the chain on, and this one sends nothing. A send that fails is tried again while the delivery holds its message;
storing an outcome that was decided — a re-queued link and the delete that follows it, the delete after an answer —
is finished even when a shutdown arrives meanwhile: cut short, a re-queue would leave two links of one chain (the
new one sent, the old one released).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

from callback_worker.worker.events import Events, Noted, Reported
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.lifecycle import Delivery, Disposition, Phase
from callback_worker.worker.logs import get_logger
from callback_worker.worker.message import CallbackMessage, Continuation
from callback_worker.worker.outcome import Failure, Outcome, failure
from callback_worker.worker.queue import Queue
from callback_worker.worker.report import Reporter, ReportResult
from callback_worker.worker.requeue import Requeuer
from callback_worker.worker.retrying import REQUEUE_BACKOFF
from callback_worker.worker.sqs import with_retries
from callback_worker.worker.step_context import StepResolver
from callback_worker.worker.taxonomy import classify, error_code
from callback_worker.worker.tokens import Tokens

log = get_logger("worker.settle")
T = TypeVar("T")

#: Seconds a shutdown waits for an outcome being stored (a re-queue, a delete) before it gives up on it.
SHUTDOWN_SETTLE_LIMIT = 15.0


def chain_of(delivery: Delivery, message: CallbackMessage) -> str:
    """The id of the continuation chain a delivery belongs to: the message id of the chain's first message."""
    return message.continuation.origin_message_id or delivery.received.message_id


def _take_over_cancellation(delivery: Delivery) -> None:
    """A shutdown cancelled this task while it stores a decided outcome: finish storing first; the cancellation is
    taken up again once the delivery is acknowledged (``delivery.interrupted``)."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
    delivery.interrupted = True


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
    ) -> None:
        self.queue = queue
        self.leases = leases
        self.reporter = reporter
        self.requeuer = requeuer
        self.tokens = tokens
        self.events = events
        self.steps = steps

    async def answer(self, delivery: Delivery, token: str, outcome: Outcome) -> None:
        """Report ``outcome``; ANSWERED once SageMaker has it (or had one already, or does not know the token),
        REQUEUED once it was handed on, KEPT if SageMaker refused even a plain Failure."""
        delivery.enter(Phase.ANSWERING)
        delivery.decided = outcome
        result = await self._report_or_hand_on(delivery, token, outcome)
        if result is None:
            return None
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

    async def _report_or_hand_on(self, delivery: Delivery, token: str, outcome: Outcome) -> ReportResult | None:
        """The report's result; None once the answer was handed on (the delivery had to let go first)."""
        report = asyncio.ensure_future(self.reporter.report(token, outcome))
        # An answer decided once the 12 hours ran out is reported within what is left of the visibility, then handed
        # on; one decided before is handed on when they run out; one decided during a shutdown is handed on at once.
        timeout: float | None = None
        watched = delivery.lease_ending
        if delivery.lease_exhausted or delivery.interrupted:
            watched = asyncio.Event()
            left = delivery.lease.visible_until - self.leases.clock() - self.leases.call_timeout
            timeout = 0.0 if delivery.interrupted else max(0.0, left)
        ending = asyncio.ensure_future(watched.wait())
        try:
            await asyncio.wait({report, ending}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            _take_over_cancellation(delivery)
            log.info("shutting down before SageMaker took the answer; handing it on")
        finally:
            ending.cancel()
        if report.done() and not report.cancelled() and report.exception() is None:
            return report.result()
        report.cancel()
        await asyncio.gather(report, return_exceptions=True)
        if not delivery.interrupted:
            log.warning("the receipt's 12 hours are running out before SageMaker took the answer; handing it on")
        await self.finish_despite_shutdown(delivery, self._hand_on(delivery, outcome))  # a shutdown now waits for it
        return None

    async def _hand_on(self, delivery: Delivery, outcome: Outcome) -> None:
        """Send the decided answer as the chain's next link (REQUEUED); KEPT if that cannot be done in time."""
        message = delivery.message
        if message is None:  # a malformed body: its next delivery decides the same Failure again, without work
            return delivery.enter(Phase.KEPT)
        chain = chain_of(delivery, message)
        link = replace(
            message.continuation,
            origin_message_id=chain,
            link=message.continuation.link + 1,
            state=None,
            wait=0.0,
            not_before=self.requeuer.wall(),
            answer=outcome,
        )
        try:
            async with asyncio.timeout(SHUTDOWN_SETTLE_LIMIT):
                problem = await self.requeuer.send(message, link)
        except Exception as exc:  # noqa: BLE001 - TimeoutError or SQS failing too: the documented window
            log.error("could not hand the answer on; the message will be delivered again", error=repr(exc))  # noqa: TRY400
            return delivery.enter(Phase.KEPT)
        if problem is not None:  # a body over the queue's MaximumMessageSize (outputs near SageMaker's limits)
            log.error("could not hand the answer on; the message will be delivered again", error=problem)
            return delivery.enter(Phase.KEPT)
        self.events.publish(Noted("handed_on"))
        self.tokens.advance_chain(message.token, chain, link.link)
        return delivery.enter(Phase.REQUEUED)

    async def requeue(self, delivery: Delivery, message: CallbackMessage, continuation: Continuation) -> None:
        """Send ``continuation`` as the chain's next link (REQUEUED); answer a Failure if it can never be sent;
        KEPT if the delivery lost its message, or had to let it go, before SQS took the link."""
        chain = chain_of(delivery, message)
        link = replace(continuation, origin_message_id=chain, link=message.continuation.link + 1)
        if not await self.leases.confirm(delivery.lease):
            log.warning("this message was delivered again elsewhere (its lease lapsed); the other delivery continues")
            return delivery.enter(Phase.KEPT)
        sent, problem = await self.finish_despite_shutdown(delivery, self._send_link(delivery, message, link))
        if problem is not None:
            return await self.answer(delivery, message.token, failure(problem))
        if not sent:
            if delivery.interrupted:  # shutting down: the message is released, and runs again elsewhere
                raise asyncio.CancelledError
            return delivery.enter(Phase.KEPT)
        self.tokens.advance_chain(message.token, chain, link.link)
        return delivery.enter(Phase.REQUEUED)

    async def _send_link(
        self, delivery: Delivery, message: CallbackMessage, link: Continuation
    ) -> tuple[bool, str | None]:
        """(sent, why it can never be): transient failures are tried again while the delivery holds its message."""
        backoff = REQUEUE_BACKOFF.start()
        while True:
            try:
                problem = await self.requeuer.send(message, link)
            except Exception as exc:  # noqa: BLE001 - transient by the error table: keep the message, try again
                if not self._holds(delivery):
                    log.error("re-queue still failing and the lease is ending; the message will be delivered again")  # noqa: TRY400
                    return False, None
                log.warning("re-queue failed; trying again", error=f"{error_code(exc)}: {exc}")
                await backoff.sleep()
                continue
            return problem is None, problem

    def _holds(self, delivery: Delivery) -> bool:
        """Whether the delivery still holds its message for a while (not lost, its 12-hour budget not ending)."""
        lease = delivery.lease
        # Not ``delivery.interrupted``: at a shutdown the send goes on for SHUTDOWN_SETTLE_LIMIT (the caller's bound).
        return (
            not lease.lost
            and not delivery.lease_exhausted
            and self.leases.clock() < lease.budget_end - self.leases.margin
        )

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
                return await with_retries(lambda: self.queue.delete(handle), "DeleteMessageBatch")
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
            and not lease.lost
            and classify("DeleteMessageBatch", exc).transient
            and self.leases.clock() < lease.budget_end
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
            _take_over_cancellation(delivery)
        try:
            async with asyncio.timeout(SHUTDOWN_SETTLE_LIMIT):
                return await task
        except TimeoutError:
            raise asyncio.CancelledError from None
