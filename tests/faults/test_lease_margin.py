"""Defect 1 — lease margin: a failed renewal must not let a lease lapse, and one slow call must delay no other.

Before: leases were renewed at a 1.5-tick horizon and a renewal that failed (a per-entry error SQS marks as its own
fault, or a call out of retries) was not tried again within its round; one failure per lease let about half of
them lapse and another replica ran those steps again. The ticker also waited for a whole round, so one slow call
held back every other lease.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, cast

from callback_worker.worker.handler import CallbackContext
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.queue import BatchEntryError, Queue, ReceivedMessage
from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import start_one
from tests.integration.conftest import QueueFactory
from tests.worker_harness import running_worker, wait_for_status, worker_settings


async def test_a_failed_renewal_per_lease_lets_no_lease_lapse_across_two_replicas(
    sagemaker: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    runs: Counter[str] = Counter()

    async def slow(context: CallbackContext) -> dict[str, str]:
        runs[context.token] += 1
        await asyncio.sleep(20)  # longer than the visibility timeout: only renewals keep the message hidden
        return {}

    renewed: set[str] = set()

    def first_renewal_of_a_lease(body: dict[str, Any]) -> bool:
        handles = {str(entry["ReceiptHandle"]) for entry in body["Entries"]}
        fresh = bool(handles - renewed)
        renewed.update(handles)
        return fresh

    # Each lease's first renewal fails (every entry of that call, through SQS's own fault); later calls succeed.
    sqs_faults.add(Rule("ChangeMessageVisibilityBatch", "entry_error", times=10_000, when=first_renewal_of_a_lease))
    queue_url, _ = await make_queue()
    settings = worker_settings(queue_url, handler="slow", visibility_timeout=8, concurrency=6)
    async with running_worker(settings, {"slow": slow}), running_worker(settings, {"slow": slow}):
        arns = [await start_one(sagemaker, queue_url) for _ in range(6)]
        for arn in arns:
            assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
    assert len(runs) == 6
    assert set(runs.values()) == {1}, runs
    failed = sum(1 for call in sqs_faults.calls if call.fault == "entry_error")
    assert failed >= 2  # the faults were exercised: renewals failed, and were retried
    assert sqs_faults.count("ChangeMessageVisibilityBatch") > failed


class HangingQueue:
    """Its first renewal call never returns (a connection that went silent); later calls succeed at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.renewed: list[str] = []

    async def set_visibility_many(self, changes: list[tuple[str, int]]) -> list[BatchEntryError | None]:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(3600)
        self.renewed.extend(handle for handle, _ in changes)
        return [None] * len(changes)


def received(handle: str) -> ReceivedMessage:
    now = time.time()
    return ReceivedMessage(handle, handle, "{}", 1, now, now, received_at=now)


async def test_a_hung_renewal_call_delays_no_other_lease_and_is_retried() -> None:
    queue = HangingQueue()
    leases = LeaseKeeper(cast(Queue, queue), visibility_timeout=3)
    first = leases.add(received("first"))
    first.visible_until = time.monotonic() + leases.margin  # due in the first round, whose call hangs
    ticker = asyncio.create_task(leases.run())
    try:
        async with asyncio.timeout(leases.tick * 3):
            while queue.calls == 0:
                await asyncio.sleep(0.02)
        second = leases.add(received("second"))
        second.visible_until = time.monotonic() + leases.margin - 0.1  # due in the next round
        async with asyncio.timeout(leases.tick * 4):
            while not {"first", "second"} <= set(queue.renewed):
                await asyncio.sleep(0.02)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    assert first.visible_until > time.monotonic()
    assert second.visible_until > time.monotonic()
