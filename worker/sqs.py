"""The queue: long-poll receives, and deletes and visibility changes coalesced into batches of at most ten.

Batch calls can fail per entry; each caller learns the fate of its own entry, as :class:`BatchEntryError`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from callback_worker.config.limits import DEFAULT_MAX_MESSAGE_BYTES, MAX_BATCH, MAX_DELAY_SECONDS, MAX_RECEIVE
from callback_worker.worker.logs import get_logger
from callback_worker.worker.queue import BatchEntryError, ReceivedMessage
from callback_worker.worker.retrying import SQS_CALL_BACKOFF
from callback_worker.worker.taxonomy import classify, is_outage

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

T = TypeVar("T")
log = get_logger("worker.sqs")

#: Calls ``with_retries`` makes before it gives up.
CALL_ATTEMPTS = 8
#: The round trip assumed for a receive until other SQS calls have been timed.
DEFAULT_ROUND_TRIP = 1.0
#: The longest round trip assumed (beyond it, a call is an outage, not a round trip).
MAX_ROUND_TRIP = 10.0
#: Recent calls whose durations estimate the round trip.
ROUND_TRIP_SAMPLES = 16


def worth_retrying(operation: str, exc: BaseException) -> bool:
    """Whatever the error table (:mod:`worker.taxonomy`) does not know to be final: transport trouble, throttling,
    5xx, any 4xx or per-entry error it has no entry for."""
    return classify(operation, exc).transient


async def with_retries(call: Callable[[], Awaitable[T]], operation: str, attempts: int = CALL_ATTEMPTS) -> T:
    """``call()`` (an SQS ``operation``), called again with jittered backoff (0.2 s doubling, at most 5 s) while it
    fails in a way worth retrying, at most ``attempts`` times; the last error is raised."""
    backoff = SQS_CALL_BACKOFF.start()
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if attempt == attempts or not worth_retrying(operation, exc):
                raise
            log.warning("SQS call failed; retrying", error=f"{type(exc).__name__}: {exc}", attempt=attempt)
            await backoff.sleep()
    raise AssertionError("unreachable")  # pragma: no cover


FlushFunction = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class Batcher:
    """Coalesces single-entry requests into batch calls; each :meth:`submit` resolves with its own entry's fate."""

    def __init__(self, flush: FlushFunction, linger: float = 0.005) -> None:
        self._flush = flush
        self._linger = linger
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._scheduled: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._counter = 0

    async def submit(self, entry: dict[str, Any]) -> None:
        """Queue ``entry`` (without ``Id``) for the next batch; raise its error if it fails."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counter += 1
        self._pending.append(({**entry, "Id": str(self._counter)}, future))
        if len(self._pending) >= MAX_BATCH:
            self._send_full_batches()
        elif self._scheduled is None:
            self._scheduled = asyncio.create_task(self._after_linger())
        await future

    async def close(self) -> None:
        """Send whatever is pending and wait for every batch in flight."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._send_all()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _after_linger(self) -> None:
        await asyncio.sleep(self._linger)
        self._scheduled = None
        self._send_all()

    def _send_full_batches(self) -> None:
        while len(self._pending) >= MAX_BATCH:
            self._start(self._pending[:MAX_BATCH])
            del self._pending[:MAX_BATCH]

    def _send_all(self) -> None:
        self._send_full_batches()
        if self._pending:
            self._start(self._pending)
            self._pending = []

    def _start(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            response = await self._flush([entry for entry, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every caller sees the transport error and decides
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        errors = entry_errors(response, [entry["Id"] for entry, _ in batch])
        for (_, future), error in zip(batch, errors, strict=True):
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


def entry_errors(response: Any, ids: Sequence[str]) -> list[BatchEntryError | None]:
    """Each entry's failure in a batch call's response (None where it succeeded), in the order of ``ids``."""
    failed = {item["Id"]: item for item in response.get("Failed", [])}
    return [
        None
        if (failure := failed.get(entry_id)) is None
        else BatchEntryError(
            failure.get("Code", "Unknown"), failure.get("Message", ""), sender_fault=bool(failure.get("SenderFault"))
        )
        for entry_id in ids
    ]


class SqsQueue:
    """One SQS queue as the worker uses it (the :class:`worker.queue.Queue` protocol)."""

    def __init__(self, client: SQSClient, url: str, *, visibility_timeout: int, wait_time: int) -> None:
        self.client = client
        self.url = url
        self.visibility_timeout = visibility_timeout
        self.wait_time = wait_time
        self._deletes = Batcher(self._delete_batch)
        self._visibility = Batcher(self._visibility_batch)
        self.reachable = True
        """False from a call that failed for transport reasons until the next call SQS answers."""
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        """The queue's MaximumMessageSize (read from its attributes at start-up)."""
        self._round_trips: deque[float] = deque(maxlen=ROUND_TRIP_SAMPLES)

    async def attributes(self) -> dict[str, str]:
        """The queue's attributes (also a cheap reachability check); notes its MaximumMessageSize."""
        response = await self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])
        attributes = {str(key): value for key, value in response.get("Attributes", {}).items()}
        self.max_message_bytes = int(attributes.get("MaximumMessageSize", DEFAULT_MAX_MESSAGE_BYTES))
        return attributes

    async def receive(self, max_messages: int) -> list[ReceivedMessage]:
        """One long poll for up to ``max_messages`` (≤ 10) messages. SQS hides a message from the moment it hands
        it out, somewhere in the poll: each delivery says how long before the poll returned that was, at most (the
        receive's own round trip, estimated from other calls), so that its lease is not counted from the poll's
        start — a message that arrives late in a 20-second poll still has its whole visibility timeout."""
        started = time.monotonic()
        response = await self._tracked(
            self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(max_messages, MAX_RECEIVE),
                WaitTimeSeconds=self.wait_time,
                VisibilityTimeout=self.visibility_timeout,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "ApproximateFirstReceiveTimestamp",
                    "SentTimestamp",
                ],
            )
        )
        round_trip = min(time.monotonic() - started, self.round_trip())
        now = time.time()
        return [ReceivedMessage.from_api(raw, now, now, round_trip) for raw in response.get("Messages", [])]

    def round_trip(self) -> float:
        """The longest of the recent non-polling calls' durations (bounded), or the default until one was timed."""
        return min(MAX_ROUND_TRIP, max(self._round_trips, default=DEFAULT_ROUND_TRIP))

    async def delete(self, receipt_handle: str) -> None:
        """Delete one message (batched with others). Raises BatchEntryError or the transport error."""
        await self._deletes.submit({"ReceiptHandle": receipt_handle})

    async def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide one message for ``seconds`` more seconds (0: visible now), batched with others."""
        await self._visibility.submit({"ReceiptHandle": receipt_handle, "VisibilityTimeout": seconds})

    async def set_visibility_many(self, changes: Sequence[tuple[str, int]]) -> list[BatchEntryError | None]:
        """One ChangeMessageVisibilityBatch call for up to ten (receipt handle, seconds) pairs; each entry's
        failure or None. A transport error is raised."""
        ids = [str(index) for index in range(len(changes))]
        entries = [
            {"Id": entry_id, "ReceiptHandle": handle, "VisibilityTimeout": seconds}
            for entry_id, (handle, seconds) in zip(ids, changes, strict=True)
        ]
        response = await self._visibility_batch(entries)
        return entry_errors(response, ids)

    async def send(self, body: str, delay: int = 0) -> str:
        """Send a new message, visible after ``delay`` seconds (≤ 900). Returns its message id."""
        response = await self._tracked(
            self.client.send_message(
                QueueUrl=self.url, MessageBody=body, DelaySeconds=max(0, min(delay, MAX_DELAY_SECONDS))
            )
        )
        return str(response["MessageId"])

    async def close(self) -> None:
        """Flush pending deletes and visibility changes."""
        await self._deletes.close()
        await self._visibility.close()

    async def _delete_batch(self, entries: Sequence[dict[str, Any]]) -> Any:
        entries_: Any = list(entries)
        return await self._timed(self.client.delete_message_batch(QueueUrl=self.url, Entries=entries_))

    async def _visibility_batch(self, entries: Sequence[dict[str, Any]]) -> Any:
        entries_: Any = list(entries)
        return await self._timed(self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries_))

    async def _timed(self, call: Awaitable[T]) -> T:
        """A call that answers at once (no long poll): its duration is a sample of the round trip."""
        started = time.monotonic()
        result = await self._tracked(call)
        self._round_trips.append(time.monotonic() - started)
        return result

    async def _tracked(self, call: Awaitable[T]) -> T:
        """Await an SQS call, noting whether SQS could be reached (for /readyz)."""
        try:
            result = await call
        except Exception as exc:
            if is_outage(exc):
                self.reachable = False
            raise
        self.reachable = True
        return result


__all__ = ["Batcher", "SqsQueue", "entry_errors", "with_retries", "worth_retrying"]
