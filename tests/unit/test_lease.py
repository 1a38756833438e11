"""worker/lease.py LeaseKeeper: which leases a round renews, in what order, and how the calls are spread."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from callback_worker.config.limits import MAX_BATCH
from callback_worker.worker.events import Events, Tally
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.queue import BatchEntryError, Queue, ReceivedMessage

#: asyncio may run a timer up to its clock resolution early.
EARLY = 0.002


class RecordingQueue:
    """Stands in for the SQS queue: records each batch call with the loop time it was made; fails the handles
    in ``refuse`` as SQS does entries it will not change."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[float, list[tuple[str, int]]]] = []
        self.refuse = refuse
        self.answer = asyncio.Event()
        self.answer.set()

    async def set_visibility_many(self, changes: list[tuple[str, int]]) -> list[BatchEntryError | None]:
        self.calls.append((asyncio.get_running_loop().time(), list(changes)))
        await self.answer.wait()
        return [
            BatchEntryError("ReceiptHandleIsInvalid", "gone", sender_fault=True) if handle in self.refuse else None
            for handle, _ in changes
        ]

    @property
    def handles(self) -> list[str]:
        return [handle for _, changes in self.calls for handle, _ in changes]


def keeper(visibility_timeout: int = 3, refuse: frozenset[str] = frozenset()) -> tuple[LeaseKeeper, RecordingQueue]:
    queue = RecordingQueue(refuse)
    return LeaseKeeper(cast(Queue, queue), visibility_timeout, events=Events((Tally(),))), queue


def renewals(leases: LeaseKeeper) -> int:
    """Entries renewed so far, as the keeper's events told its tally."""
    return tally_of(leases)["lease_renewals"]


def tally_of(leases: LeaseKeeper) -> Tally:
    return next(listener for listener in leases.events.listeners if isinstance(listener, Tally))


def message(handle: str) -> ReceivedMessage:
    now = time.monotonic()
    return ReceivedMessage(handle, handle, "{}", 1, first_receive_time=now, sent_time=now)


def add_due(leases: LeaseKeeper, handles: list[str], expiries: list[float]) -> None:
    for handle, expiry in zip(handles, expiries, strict=True):
        leases.add(message(handle)).visible_until = expiry


async def test_a_round_renews_soonest_expiry_first_in_batches_spread_over_a_quarter_tick() -> None:
    leases, queue = keeper()
    now = time.monotonic()
    handles = [f"h{i:02}" for i in range(5 * MAX_BATCH)]
    add_due(leases, handles, [now + 1.0 - i / 100 for i in range(len(handles))])  # the last added expires first

    await leases.renew_due()
    await leases.join()

    assert queue.handles == handles[::-1]
    assert [len(changes) for _, changes in queue.calls] == [MAX_BATCH] * 5
    assert {seconds for _, changes in queue.calls for _, seconds in changes} == {3}
    assert (renewals(leases), tally_of(leases)["lease_calls"]) == (len(handles), 5)
    interval = leases.tick / 4 / 5
    first = queue.calls[0][0]
    for number, (started, _) in enumerate(queue.calls):
        assert started >= first + number * interval - EARLY


async def test_leases_with_time_left_wait_for_a_later_round() -> None:
    leases, queue = keeper(visibility_timeout=30)
    now = time.monotonic()
    add_due(leases, ["soon", "later"], [now + 5, now + leases.margin + 1])

    await leases.renew_due()
    await leases.join()

    assert queue.handles == ["soon"]


async def test_stopping_the_ticker_waits_for_calls_out_and_starts_no_more() -> None:
    leases, queue = keeper()
    now = time.monotonic()
    handles = [f"h{i:02}" for i in range(3 * MAX_BATCH)]
    add_due(leases, handles, [now] * len(handles))
    queue.answer.clear()
    ticker = asyncio.create_task(leases.run())
    async with asyncio.timeout(10):
        while not queue.calls:
            await asyncio.sleep(0.01)

    ticker.cancel()
    await asyncio.sleep(0.05)
    assert not ticker.done()  # the call out is waited for: no renewal reaches SQS after the leases are released
    queue.answer.set()
    await asyncio.gather(ticker, return_exceptions=True)

    assert ticker.cancelled()
    assert len(queue.calls) == 1
    assert renewals(leases) == MAX_BATCH


async def test_a_refused_renewal_marks_only_that_lease_lost() -> None:
    leases, _ = keeper(refuse=frozenset({"h1"}))
    add_due(leases, ["h0", "h1", "h2"], [time.monotonic()] * 3)

    await leases.renew_due()
    await leases.join()

    assert {handle: lease.lost for handle, lease in leases.leases.items()} == {"h0": False, "h1": True, "h2": False}
    assert renewals(leases) == 2


async def test_a_lease_let_go_during_the_round_is_neither_renewed_nor_lost() -> None:
    leases, queue = keeper(refuse=frozenset({"h05", "h15"}))
    now = time.monotonic()
    handles = [f"h{i:02}" for i in range(2 * MAX_BATCH)]
    add_due(leases, handles, [now] * len(handles))
    queue.answer.clear()
    renewing = asyncio.create_task(leases.renew_due())
    async with asyncio.timeout(10):
        while not queue.calls:
            await asyncio.sleep(0)
    leases.remove(leases.leases["h05"])  # deleted while its renewal is out
    leases.remove(leases.leases["h15"])  # deleted before its batch is sent
    queue.answer.set()

    await renewing
    await leases.join()

    assert "h15" not in queue.handles
    assert not any(lease.lost for lease in leases.leases.values())
    assert renewals(leases) == len(handles) - 2
