"""worker/worker.py Slots: how many messages a poller may receive, and when."""

from __future__ import annotations

import asyncio

from callback_worker.worker.worker import Slots

#: Long enough that a test waiting the whole of it fails by the guard below instead of passing slowly.
FOREVER = 3600.0


async def take(slots: Slots, most: int = 10, gather: float = 0.0) -> int:
    async with asyncio.timeout(30):
        return await slots.take(most, gather)


async def test_takes_up_to_most_at_once() -> None:
    slots = Slots(25)

    assert [await take(slots), await take(slots), await take(slots)] == [10, 10, 5]
    assert slots.in_use == 25


async def test_waits_for_a_free_slot() -> None:
    slots = Slots(3)
    assert await take(slots) == 3
    waiting = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    assert not waiting.done()

    slots.give(2)

    assert await waiting == 2


async def test_gathering_turns_slots_freed_one_by_one_into_one_take() -> None:
    slots = Slots(10)
    assert await take(slots) == 10
    slots.give()
    waiting = asyncio.create_task(take(slots, gather=FOREVER))
    for _ in range(9):
        await asyncio.sleep(0)
        assert not waiting.done()
        slots.give()

    assert await waiting == 10


async def test_gathering_ends_with_what_is_free() -> None:
    slots = Slots(10)
    assert await take(slots) == 10
    slots.give(4)

    assert await take(slots, gather=0.01) == 4
    assert slots.free == 0


async def test_no_gathering_when_capacity_is_below_a_full_receive() -> None:
    slots = Slots(4)

    assert await take(slots, gather=FOREVER) == 4
