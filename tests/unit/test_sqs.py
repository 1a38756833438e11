"""worker/sqs.py Batcher: at most ten entries per call, each submitter learns only its own entry's fate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callback_worker.config.limits import MAX_BATCH
from callback_worker.worker.queue import BatchEntryError, ReceivedMessage, settle
from callback_worker.worker.sqs import Batcher


class FakeFlush:
    """A batch call that records its batches and fails the entries (by ReceiptHandle) it is told to."""

    def __init__(self, fail: dict[str, tuple[str, bool]] | None = None, error: Exception | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail or {}
        self.error = error
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(entries)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        failed = [
            {
                "Id": entry["Id"],
                "Code": self.fail[entry["ReceiptHandle"]][0],
                "Message": "nope",
                "SenderFault": self.fail[entry["ReceiptHandle"]][1],
            }
            for entry in entries
            if entry["ReceiptHandle"] in self.fail
        ]
        successful = [{"Id": entry["Id"]} for entry in entries if entry["ReceiptHandle"] not in self.fail]
        return {"Successful": successful, "Failed": failed}

    @property
    def handles(self) -> list[list[str]]:
        return [[entry["ReceiptHandle"] for entry in call] for call in self.calls]


def entry(handle: str) -> dict[str, Any]:
    return {"ReceiptHandle": handle}


async def test_single_entry_is_sent_after_the_linger() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=0.001)
    await batcher.submit(entry("h1"))
    assert flush.handles == [["h1"]]
    assert set(flush.calls[0][0]) == {"ReceiptHandle", "Id"}


@pytest.mark.parametrize(("count", "sizes"), [(10, [10]), (11, [10, 1]), (25, [10, 10, 5]), (30, [10, 10, 10])])
async def test_at_most_ten_entries_per_call(count: int, sizes: list[int]) -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=0.01)
    await asyncio.gather(*(batcher.submit(entry(f"h{i}")) for i in range(count)))
    assert [len(call) for call in flush.calls] == sizes
    assert all(len(call) <= MAX_BATCH for call in flush.calls)
    assert sorted(handle for call in flush.handles for handle in call) == sorted(f"h{i}" for i in range(count))


async def test_ids_are_unique_within_and_across_batches() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=0.001)
    await asyncio.gather(*(batcher.submit(entry(f"h{i}")) for i in range(23)))
    await batcher.submit(entry("late"))
    ids = [item["Id"] for call in flush.calls for item in call]
    assert len(ids) == len(set(ids)) == 24


async def test_caller_id_is_replaced() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=0.001)
    await asyncio.gather(
        batcher.submit({"ReceiptHandle": "a", "Id": "x"}), batcher.submit({"ReceiptHandle": "b", "Id": "x"})
    )
    assert len({item["Id"] for item in flush.calls[0]}) == 2


async def test_entries_submitted_within_the_linger_share_a_call() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=0.05)
    first = asyncio.create_task(batcher.submit(entry("a")))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.submit(entry("b")))
    await asyncio.gather(first, second)
    assert flush.handles == [["a", "b"]]


async def test_per_entry_failures_reach_only_their_submitter() -> None:
    flush = FakeFlush(fail={"h3": ("ReceiptHandleIsInvalid", True), "h12": ("InternalError", False)})
    batcher = Batcher(flush, linger=0.001)
    results = await settle([batcher.submit(entry(f"h{i}")) for i in range(15)])
    failed = {f"h{i}": result for i, result in enumerate(results) if result is not None}
    assert set(failed) == {"h3", "h12"}
    invalid, internal = failed["h3"], failed["h12"]
    assert isinstance(invalid, BatchEntryError)
    assert (invalid.code, invalid.sender_fault) == ("ReceiptHandleIsInvalid", True)
    assert str(invalid) == "ReceiptHandleIsInvalid: nope"
    assert isinstance(internal, BatchEntryError)
    assert (internal.code, internal.sender_fault) == ("InternalError", False)


async def test_failed_entry_without_code_or_message() -> None:
    async def flush(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Failed": [{"Id": entries[0]["Id"]}]}

    with pytest.raises(BatchEntryError) as caught:
        await Batcher(flush, linger=0.001).submit(entry("a"))
    assert (caught.value.code, caught.value.sender_fault) == ("Unknown", False)


async def test_flush_exception_reaches_every_submitter_of_that_call() -> None:
    boom = ConnectionResetError("transport gone")
    flush = FakeFlush(error=boom)
    batcher = Batcher(flush, linger=0.001)
    results = await settle([batcher.submit(entry(f"h{i}")) for i in range(12)])
    assert len(flush.calls) == 2
    assert all(result is boom for result in results)


async def test_a_failing_call_does_not_affect_other_calls() -> None:
    calls = 0

    async def flush(entries: list[dict[str, Any]]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError
        return {"Successful": [{"Id": item["Id"]} for item in entries]}

    batcher = Batcher(flush, linger=0.001)
    results = await settle([batcher.submit(entry(f"h{i}")) for i in range(13)])
    assert [type(result) for result in results[:10]] == [TimeoutError] * 10
    assert results[10:] == [None, None, None]


async def test_close_flushes_pending_entries_without_waiting_for_the_linger() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush, linger=3600)
    submitters = [asyncio.create_task(batcher.submit(entry(f"h{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    assert flush.calls == []
    async with asyncio.timeout(2):
        await batcher.close()
        await asyncio.gather(*submitters)
    assert flush.handles == [["h0", "h1", "h2"]]


async def test_close_waits_for_calls_in_flight() -> None:
    flush = FakeFlush()
    flush.release.clear()
    batcher = Batcher(flush, linger=0.001)
    submitters = [asyncio.create_task(batcher.submit(entry(f"h{i}"))) for i in range(12)]
    await asyncio.sleep(0.02)
    assert len(flush.calls) == 2
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    flush.release.set()
    async with asyncio.timeout(2):
        await closing
    assert all(task.done() and task.exception() is None for task in submitters)


async def test_close_with_nothing_pending() -> None:
    flush = FakeFlush()
    batcher = Batcher(flush)
    await batcher.close()
    assert flush.calls == []


async def test_cancelled_submitter_does_not_disturb_the_others() -> None:
    flush = FakeFlush()
    flush.release.clear()
    batcher = Batcher(flush, linger=0.001)
    first = asyncio.create_task(batcher.submit(entry("a")))
    second = asyncio.create_task(batcher.submit(entry("b")))
    await asyncio.sleep(0.02)
    first.cancel()
    flush.release.set()
    async with asyncio.timeout(2):
        await second
    assert first.cancelled()
    assert flush.handles == [["a", "b"]]


def test_received_message_from_api() -> None:
    raw = {
        "MessageId": "m",
        "ReceiptHandle": "r",
        "Body": "{}",
        "Attributes": {
            "ApproximateReceiveCount": "3",
            "ApproximateFirstReceiveTimestamp": "1700000000123",
            "SentTimestamp": "1699999999000",
        },
    }
    message = ReceivedMessage.from_api(raw, now=5.0)
    assert (message.message_id, message.receipt_handle, message.body, message.receive_count) == ("m", "r", "{}", 3)
    assert message.first_receive_time == 1700000000.123
    assert message.sent_time == 1699999999.0
    bare = ReceivedMessage.from_api({"MessageId": "m", "ReceiptHandle": "r"}, now=5.0)
    assert (bare.body, bare.receive_count, bare.first_receive_time, bare.sent_time) == ("", 1, 5.0, 5.0)
