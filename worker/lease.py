"""Leases: every in-flight message stays hidden while its handler runs.

A ticker starts a renewal round once per tick (a fifth of the visibility timeout, at least a second, at most a
minute). A round takes every lease whose visibility runs out within the *margin* — two ticks plus the longest a
renewal call may take (half a tick, 1 to 10 s), about half the visibility timeout — and renews them ten to a
``ChangeMessageVisibilityBatch``, soonest expiry first, the calls spread over a quarter tick. A lease is so renewed
about every three ticks (0.6 of the visibility timeout).

Each call is a task of its own, bounded by ``call_timeout``: the ticker never waits for a round, so one slow call
delays no other lease. A call that fails (transport error, timeout, or a per-entry error SQS marks as its own fault)
is retried within the round, with backoff, for the entries it failed, until they are renewed or their visibility is
gone. A lease found due has at least one tick plus ``call_timeout`` left (the round before did not find it due), so
while SQS answers at least one call in two no lease lapses. A per-entry error that the error table
(:mod:`worker.taxonomy`) knows to be final for the receipt (``ReceiptHandleIsInvalid``, ``MessageNotInflight``) marks
the lease *lost*: the message may be delivered elsewhere. Any other error is retried.

All of it runs on the monotonic clock: a lease is stamped when the receive returns, less the receive's own round trip
(:attr:`~worker.queue.ReceivedMessage.round_trip`), and an NTP step of the system clock moves no deadline.

SQS keeps a message hidden at most 12 hours *per receipt* (counted from when it handed the message out) and rejects,
rather than clamps, a longer request; each renewal asks for ``min(visibility_timeout, what is left of the 12
hours)``. When what is left no longer covers the margin the lease is *exhausted*: ``on_exhausted`` runs once, and
the dispatcher cancels the handler and answers the step while the message is still hidden — rather than let it
reappear and start the work a second time. Handlers that wait longer should return :class:`~worker.handler.Retry`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from callback_worker.config.limits import MAX_BATCH, MAX_VISIBILITY_SECONDS
from callback_worker.worker.events import NO_EVENTS, Events, LeaseCall
from callback_worker.worker.logs import get_logger
from callback_worker.worker.queue import BatchEntryError, Queue, ReceivedMessage, settle
from callback_worker.worker.retrying import lease_renewal_backoff
from callback_worker.worker.sqs import with_retries
from callback_worker.worker.taxonomy import ErrorClass, classify

#: The longest tick: with a 12-hour visibility timeout, renewals still start within a minute of being due.
MAX_TICK = 60.0
#: The longest a renewal call may take before it is abandoned and retried (half a tick, within these bounds).
MAX_CALL_TIMEOUT = 10.0
MIN_CALL_TIMEOUT = 1.0

log = get_logger("worker.lease")
_RENEW = "ChangeMessageVisibilityBatch"


def _final(error: BatchEntryError) -> bool:
    """The error table says SQS no longer honours this receipt (else the entry is retried)."""
    return classify(_RENEW, error) is ErrorClass.DEFINITIVE


@dataclass(eq=False, slots=True)
class Lease:
    """One in-flight delivery and when it would become visible again."""

    message: ReceivedMessage
    started: float
    """Monotonic seconds at which SQS may have handed the message out, at the earliest (the lease counts from it)."""
    returned: float
    """Monotonic seconds at which the receive returned (time elapsed since the handout counts from it, at least)."""
    visible_until: float
    """Monotonic seconds at which SQS would show the message again without a renewal."""
    budget_end: float
    """Monotonic seconds after which SQS refuses to keep the message hidden (12 hours after this receipt)."""
    on_exhausted: Callable[[], None] | None = None
    """Called once when the 12-hour budget no longer covers the margin."""
    lost: bool = False
    """Set when SQS refused a renewal: the message may be delivered elsewhere."""
    renewing: bool = False
    """A renewal call for this lease is out (a later round leaves it to that call)."""


def lease_timing(visibility_timeout: int) -> tuple[float, float, float]:
    """``(tick, call_timeout, margin)`` for a visibility timeout: a lease is renewed once less than ``margin`` of
    its visibility is left; ``margin`` is two ticks plus the longest a renewal call may take."""
    tick = min(MAX_TICK, max(1.0, visibility_timeout / 5))
    call_timeout = min(MAX_CALL_TIMEOUT, max(MIN_CALL_TIMEOUT, tick / 2))
    return tick, call_timeout, 2 * tick + call_timeout


class LeaseKeeper:
    """Holds the leases of all in-flight messages and renews them, one round per tick."""

    def __init__(
        self,
        queue: Queue,
        visibility_timeout: int,
        clock: Callable[[], float] = time.monotonic,
        events: Events = NO_EVENTS,
    ) -> None:
        self.queue = queue
        self.events = events
        self.visibility_timeout = visibility_timeout
        self.tick, self.call_timeout, self.margin = lease_timing(visibility_timeout)
        self.clock = clock
        """The monotonic clock every deadline is read from."""
        self.leases: dict[str, Lease] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._stopping = False

    def add(self, message: ReceivedMessage, on_exhausted: Callable[[], None] | None = None) -> Lease:
        """Start tracking a message just received with the keeper's visibility timeout; ``on_exhausted`` runs once
        if the 12-hour budget of this receipt runs out while the lease is held."""
        returned = self.clock()
        started = returned - max(0.0, message.round_trip)
        lease = Lease(
            message,
            started=started,
            returned=returned,
            visible_until=started + self.visibility_timeout,
            budget_end=started + MAX_VISIBILITY_SECONDS,
            on_exhausted=on_exhausted,
        )
        self.leases[message.receipt_handle] = lease
        return lease

    def remove(self, lease: Lease) -> None:
        """Stop renewing (the message is deleted or deliberately left to reappear)."""
        self.leases.pop(lease.message.receipt_handle, None)

    async def run(self) -> None:
        """Start a round every tick, forever. Cancel to stop: calls already out are let finish (without further
        retries), so that no renewal reaches SQS after the caller goes on to release the leases."""
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        try:
            while True:
                next_round = max(next_round + self.tick, loop.time())
                await asyncio.sleep(next_round - loop.time())
                self._track(asyncio.create_task(self.renew_due()))
        finally:
            self._stopping = True
            if self._calls:
                _, late = await asyncio.wait(set(self._calls), timeout=self.call_timeout + 1.0)
                for call in late:
                    call.cancel()

    async def renew_due(self) -> None:
        """Renew every lease whose visibility runs out within the margin: ten to a call, soonest expiry first, the
        calls spread over a quarter tick. Returns once every call has been started."""
        now = self.clock()
        horizon = now + self.margin
        for lease in list(self.leases.values()):
            self._check_budget(lease, now)
        due = sorted(
            (
                lease
                for lease in self.leases.values()
                if lease.visible_until <= horizon and not lease.lost and not lease.renewing
            ),
            key=lambda lease: lease.visible_until,
        )
        renewals = [lease for lease in due if self._timeout(lease) > 0]
        if renewals:
            await self._spread(renewals, self.tick / 4)

    async def join(self) -> None:
        """Wait until every round and renewal call under way has ended."""
        while self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    def _check_budget(self, lease: Lease, now: float) -> None:
        """Run ``on_exhausted`` once when the 12-hour budget no longer covers the margin (lost leases included)."""
        if lease.budget_end - now <= self.margin and lease.on_exhausted is not None:
            callback, lease.on_exhausted = lease.on_exhausted, None
            callback()

    def _timeout(self, lease: Lease) -> int:
        """The visibility to ask for now: the timeout, or what is left of the 12 hours if less."""
        return min(self.visibility_timeout, int(lease.budget_end - self.clock()))

    async def _spread(self, renewals: list[Lease], over: float) -> None:
        loop = asyncio.get_running_loop()
        batches = range(0, len(renewals), MAX_BATCH)
        start, interval = loop.time(), over / len(batches)
        for number, first in enumerate(batches):
            if number:
                await asyncio.sleep(max(0.0, start + number * interval - loop.time()))
            if self._stopping:
                return
            batch = [lease for lease in renewals[first : first + MAX_BATCH] if self._holds(lease)]
            if batch:
                for lease in batch:
                    lease.renewing = True
                self._track(asyncio.create_task(self._renew(batch)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _renew(self, batch: list[Lease]) -> None:
        """Renew ``batch``, retrying what failed until it is renewed, lost, let go, or out of visibility."""
        backoff = lease_renewal_backoff(self.tick).start()
        pending = batch
        try:
            while pending:
                pending = [lease for lease in await self._attempt(pending) if self._worth_retrying(lease)]
                if pending:
                    await backoff.sleep()
                    pending = [lease for lease in pending if self._worth_retrying(lease)]
        finally:
            for lease in batch:
                lease.renewing = False

    def _worth_retrying(self, lease: Lease) -> bool:
        return self._holds(lease) and not self._stopping and self.clock() < lease.visible_until

    async def _attempt(self, batch: list[Lease]) -> list[Lease]:
        """One call, each entry asking for what it may have now; returns the entries to try again."""
        sent_at = self.clock()
        asked = [(lease, self._timeout(lease)) for lease in batch]
        asked = [(lease, timeout) for lease, timeout in asked if timeout > 0]
        if not asked:
            return []
        try:
            async with asyncio.timeout(self.call_timeout):
                errors = await self.queue.set_visibility_many(
                    [(lease.message.receipt_handle, timeout) for lease, timeout in asked]
                )
        except Exception as exc:  # noqa: BLE001 - transport trouble or a timeout: the leases have time left
            log.warning("lease renewal failed; retrying", leases=len(batch), error=f"{type(exc).__name__}: {exc}")
            self.events.publish(LeaseCall(renewed=(), retried=tuple(lease.message.message_id for lease, _ in asked)))
            return [lease for lease, _ in asked]
        retry: list[Lease] = []
        renewed: list[str] = []
        for (lease, timeout), error in zip(asked, errors, strict=True):
            if not self._holds(lease):
                continue  # deleted while the call was out: whatever SQS said no longer matters
            if error is None:
                lease.visible_until = sent_at + timeout
                renewed.append(lease.message.message_id)
            elif _final(error):
                self._lose(lease, error)
            else:
                retry.append(lease)
        self.events.publish(LeaseCall(tuple(renewed), tuple(lease.message.message_id for lease in retry)))
        return retry

    async def confirm(self, lease: Lease) -> bool:
        """Whether this delivery still holds its message, asked of SQS itself: a visibility change with its receipt
        handle, which SQS refuses once the message was received again elsewhere (its lease lapsed). Before a
        continuation is sent this is the fence that keeps two deliveries of one link from both continuing the chain.
        True when SQS cannot be asked (transport trouble): only a refusal proves the message gone."""
        if lease.lost or self.clock() >= lease.visible_until:
            return False
        timeout, sent_at = self._timeout(lease), self.clock()
        if timeout <= 0:
            return False
        try:
            errors = await with_retries(
                lambda: self.queue.set_visibility_many([(lease.message.receipt_handle, timeout)]), _RENEW
            )
        except Exception as exc:  # noqa: BLE001 - unknown: the lease is not known lost
            log.warning("could not confirm the lease; going on", error=f"{type(exc).__name__}: {exc}")
            return self.clock() < lease.visible_until
        error = errors[0]
        if error is None:
            lease.visible_until = max(lease.visible_until, sent_at + timeout)
            return True
        if _final(error):
            self._lose(lease, error)
            return False
        return self.clock() < lease.visible_until

    def _lose(self, lease: Lease, error: BatchEntryError) -> None:
        if lease.on_exhausted is not None and lease.budget_end - self.clock() <= self.margin + self.call_timeout:
            # Refused at the end of the 12 hours (InvalidParameterValue): the budget is spent, not the lease lost.
            callback, lease.on_exhausted = lease.on_exhausted, None
            callback()
        lease.lost = True
        log.warning(
            "lease lost; the message may be delivered again", message_id=lease.message.message_id, error=error.code
        )

    def _holds(self, lease: Lease) -> bool:
        return self.leases.get(lease.message.receipt_handle) is lease

    async def release(self, leases: list[Lease]) -> None:
        """Make these messages visible again at once (visibility 0), for another consumer to take."""
        errors = await settle([self.queue.set_visibility(lease.message.receipt_handle, 0) for lease in leases])
        for lease, error in zip(leases, errors, strict=True):
            self.remove(lease)
            if error is not None:
                log.warning("could not release message", message_id=lease.message.message_id, error=str(error))
