"""Leases: every in-flight message stays hidden while its handler runs.

One ticker renews, in batched calls, every lease that would run out before the next tick. A round's calls are
spread over its first quarter tick, the leases closest to running out first, so that ten thousand leases do not
become a thousand calls built, signed and parsed in one go while every other task on the event loop waits.

SQS lets a message stay hidden for at most 12 hours from its first receipt and rejects (does not clamp) a longer
request, so each renewal asks for ``min(visibility_timeout, what is left of the 12 hours)``. When what is left no
longer covers two ticks the lease is *exhausted*: its ``on_exhausted`` callback runs, and the dispatcher cancels the
handler and answers the step with a Failure while the message is still hidden — rather than let it reappear and
start the work a second time.
Handlers that wait longer than that should return :class:`~worker.handler.Retry`, whose continuation is a new
message with a new 12-hour budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.logs import get_logger
from worker.sqs import MAX_BATCH, Queue, ReceivedMessage, settle

#: SQS's ceiling on how long a message may stay hidden, counted from its first receipt.
MAX_HIDDEN_SECONDS = 12 * 60 * 60

log = get_logger("worker.lease")


@dataclass(eq=False, slots=True)
class Lease:
    """One in-flight delivery and when it would become visible again."""

    message: ReceivedMessage
    visible_until: float
    """Epoch seconds at which SQS would show the message again without a renewal."""
    budget_end: float
    """Epoch seconds after which SQS refuses to keep the message hidden."""
    on_exhausted: Callable[[], None] | None = None
    """Called once when the 12-hour budget no longer covers two ticks."""
    lost: bool = False
    """Set when SQS refused a renewal: the message may be delivered elsewhere."""


class LeaseKeeper:
    """Holds the leases of all in-flight messages and renews them together, once per tick."""

    def __init__(self, queue: Queue, visibility_timeout: int, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        self.tick = max(1.0, visibility_timeout / 3)
        self.clock = clock
        self.leases: dict[str, Lease] = {}
        self.renewals = 0
        """Entries renewed so far (for metrics and benchmarks)."""
        self.renewal_calls = 0

    def add(self, message: ReceivedMessage) -> Lease:
        """Start tracking a message just received with the keeper's visibility timeout."""
        now = self.clock()
        lease = Lease(
            message,
            visible_until=now + self.visibility_timeout,
            budget_end=message.first_receive_time + MAX_HIDDEN_SECONDS,
        )
        self.leases[message.receipt_handle] = lease
        return lease

    def remove(self, lease: Lease) -> None:
        """Stop renewing (the message is deleted or deliberately left to reappear)."""
        self.leases.pop(lease.message.receipt_handle, None)

    async def run(self) -> None:
        """Renew forever, one round per tick. Cancel to stop: a round under way is finished first, so that no
        renewal of it can reach SQS after the caller goes on to release the leases."""
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            next_round = max(next_round + self.tick, loop.time())
            await asyncio.sleep(next_round - loop.time())
            renewing = asyncio.ensure_future(self.renew_due())
            try:
                await asyncio.shield(renewing)
            except asyncio.CancelledError:
                await renewing
                raise

    async def renew_due(self) -> None:
        """Renew every lease that would expire before the next tick, plus half a tick of margin.

        Every lease renewed here has at least half a tick left (the last round did not find it due), so spreading
        the calls over a quarter tick, soonest expiry first, still renews each one well before it runs out.
        """
        now = self.clock()
        horizon = now + 1.5 * self.tick
        due = sorted(
            (lease for lease in self.leases.values() if lease.visible_until <= horizon and not lease.lost),
            key=lambda lease: lease.visible_until,
        )
        renewals: list[tuple[Lease, int]] = []
        for lease in due:
            remaining = int(lease.budget_end - now)
            if remaining <= 2 * self.tick and lease.on_exhausted is not None:
                lease.on_exhausted()
                lease.on_exhausted = None
            timeout = min(self.visibility_timeout, remaining)
            if timeout > 0:
                renewals.append((lease, timeout))
        if not renewals:
            return
        await self._spread(renewals, now, self.tick / 4)

    async def _spread(self, renewals: list[tuple[Lease, int]], now: float, over: float) -> None:
        """Send the renewals ten to a call, the calls evenly over ``over`` seconds; wait for them all. A lease let
        go meanwhile (its message deleted) is left out."""
        loop = asyncio.get_running_loop()
        batches = range(0, len(renewals), MAX_BATCH)
        start, interval = loop.time(), over / len(batches)
        calls: list[asyncio.Task[None]] = []
        for number, first in enumerate(batches):
            if number:
                await asyncio.sleep(max(0.0, start + number * interval - loop.time()))
            batch = [(lease, timeout) for lease, timeout in renewals[first : first + MAX_BATCH] if self._holds(lease)]
            if batch:
                self.renewal_calls += 1
                calls.append(asyncio.create_task(self._renew(batch, now)))
        await asyncio.gather(*calls)

    async def _renew(self, batch: list[tuple[Lease, int]], now: float) -> None:
        try:
            errors = await self.queue.set_visibility_many(
                [(lease.message.receipt_handle, timeout) for lease, timeout in batch]
            )
        except Exception as exc:  # noqa: BLE001 - an outage: the leases have time left, the next round tries again
            log.warning(
                "lease renewal failed; retrying next tick", leases=len(batch), error=f"{type(exc).__name__}: {exc}"
            )
            return
        for (lease, timeout), error in zip(batch, errors, strict=True):
            if not self._holds(lease):
                continue  # deleted while the call was out: whatever SQS said no longer matters
            if error is None:
                lease.visible_until = now + timeout
                self.renewals += 1
            else:
                lease.lost = True
                log.warning(
                    "lease lost; the message may be delivered again",
                    message_id=lease.message.message_id,
                    error=error.code,
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
