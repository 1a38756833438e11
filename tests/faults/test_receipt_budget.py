"""Defect 6 — the 12-hour guard counts per receipt and fires only when the budget no longer covers the margin.

Before: the guard fired once what was left no longer covered two ticks — at 8 hours with a 12-hour visibility
timeout — and counted from the message's *first* receipt ever, so a message released by a rolling restart after
11.9 hours was cancelled minutes into its new receipt; the Failure then said it "ran past 12 h".
"""

from __future__ import annotations

from typing import cast

from callback_worker.config.limits import MAX_VISIBILITY_SECONDS
from callback_worker.worker.dispatch import lease_exhausted_reason
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.queue import BatchEntryError, Queue, ReceivedMessage
from tests.fakes import FakeClock

HOUR = 3600.0


class Accepting:
    async def set_visibility_many(self, changes: list[tuple[str, int]]) -> list[BatchEntryError | None]:
        return [None] * len(changes)


def keeper(clock: FakeClock) -> LeaseKeeper:
    return LeaseKeeper(cast(Queue, Accepting()), visibility_timeout=43_200, clock=clock)


def message(first_receipt: float, received_at: float) -> ReceivedMessage:
    return ReceivedMessage("m", "h", "{}", 2, first_receipt, first_receipt, received_at=received_at)


async def renew_at(leases: LeaseKeeper, clock: FakeClock, when: float) -> None:
    clock.now = when
    await leases.renew_due()
    await leases.join()


async def test_a_twelve_hour_visibility_timeout_is_not_cut_short_at_eight_hours() -> None:
    clock = FakeClock(1_000_000.0)
    leases = keeper(clock)
    exhausted: list[float] = []
    lease = leases.add(message(clock.now, clock.now))
    lease.on_exhausted = lambda: exhausted.append(clock.now)
    start = clock.now

    for hours in (4, 8, 11):
        await renew_at(leases, clock, start + hours * HOUR)
    assert exhausted == []
    await renew_at(leases, clock, start + MAX_VISIBILITY_SECONDS - leases.margin + 1)
    assert exhausted == [clock.now]


async def test_the_budget_counts_from_this_receipt_not_the_first_one() -> None:
    clock = FakeClock(1_000_000.0)
    leases = keeper(clock)
    exhausted: list[float] = []
    # First received 11.9 hours ago, released by a rolling restart, received again now.
    lease = leases.add(message(first_receipt=clock.now - 11.9 * HOUR, received_at=clock.now))
    lease.on_exhausted = lambda: exhausted.append(clock.now)
    start = clock.now

    await renew_at(leases, clock, start + 1 * HOUR)
    await renew_at(leases, clock, start + 6 * HOUR)

    assert exhausted == []
    assert lease.budget_end == start + MAX_VISIBILITY_SECONDS


def test_the_failure_reason_says_what_happened() -> None:
    reason = lease_exhausted_reason(11.97)
    assert "12.0 h on one SQS receipt" in reason
    assert "at most 12 hours" in reason
    assert len(reason) <= 256
