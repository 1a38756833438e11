"""How often a running handler's lease is renewed, as the keeper does it and as the READMEs say it: about every 0.6
of the visibility timeout (a round every fifth of it; a lease is due once less than two rounds plus a call's time
limit is left)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.queue import BatchEntryError, Queue, ReceivedMessage

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AcceptingQueue:
    """Accepts every renewal and records the clock's time of each."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.renewed_at: list[float] = []

    async def set_visibility_many(self, changes: list[tuple[str, int]]) -> list[BatchEntryError | None]:
        self.renewed_at.append(self.clock.now)
        return [None for _ in changes]


@pytest.mark.parametrize("visibility_timeout", [60, 300])
async def test_a_lease_is_renewed_every_six_tenths_of_the_visibility_timeout(visibility_timeout: int) -> None:
    clock = Clock()
    queue = AcceptingQueue(clock)
    leases = LeaseKeeper(cast(Queue, queue), visibility_timeout, clock=clock)
    leases.add(ReceivedMessage("m", "handle", "{}", 1, first_receive_time=0.0, sent_time=0.0))

    for round_number in range(1, 31):  # the ticker's rounds, on the keeper's own clock
        clock.now = round_number * leases.tick
        await leases.renew_due()
        await leases.join()

    gaps = [later - earlier for earlier, later in zip(queue.renewed_at, queue.renewed_at[1:], strict=False)]
    assert len(queue.renewed_at) > 5
    assert queue.renewed_at[0] == pytest.approx(0.6 * visibility_timeout)
    assert gaps == pytest.approx([0.6 * visibility_timeout] * len(gaps))


@pytest.mark.parametrize("document", ["README.md", "deploy/README.md"])
def test_the_readmes_state_that_cadence(document: str) -> None:
    text = " ".join((REPO / document).read_text(encoding="utf-8").split())

    assert "0.6 of the visibility timeout" in text
    assert "every third of it" not in text
