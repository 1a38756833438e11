"""The queue as the daemon sees it: a protocol, the delivery it hands out, and a batch entry's failure.

:class:`worker.sqs.SqsQueue` is the one for SQS; :class:`worker.memory.MemoryQueue` keeps messages in a dictionary,
for tests of the dispatcher and the lifecycle that need no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from callback_worker.worker.errors import WorkerError


class Queue(Protocol):
    """What the daemon calls on a queue. Batch calls may fail per entry, as :class:`BatchEntryError`."""

    url: str
    visibility_timeout: int
    """Seconds a received message stays hidden (the receive's ``VisibilityTimeout``)."""
    wait_time: int
    """Seconds a receive waits for messages (long polling)."""
    max_message_bytes: int
    """The largest body :meth:`send` accepts (the queue's ``MaximumMessageSize``)."""
    reachable: bool
    """False from a call that failed for transport reasons until the next call the queue answers."""

    async def attributes(self) -> dict[str, str]:
        """The queue's attributes (also a reachability check at start-up)."""
        ...

    async def receive(self, max_messages: int) -> list[ReceivedMessage]:
        """One long poll for up to ``max_messages`` (at most ten) messages."""
        ...

    async def delete(self, receipt_handle: str) -> None:
        """Delete one message. Raises :class:`BatchEntryError` or the transport error."""
        ...

    async def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide one message for ``seconds`` more seconds (0: visible now)."""
        ...

    async def set_visibility_many(self, changes: Sequence[tuple[str, int]]) -> list[BatchEntryError | None]:
        """Change up to ten visibilities in one call; each entry's failure or None. A transport error is raised."""
        ...

    async def send(self, body: str, delay: int = 0) -> str:
        """Send a new message, visible after ``delay`` seconds (at most 900); its message id."""
        ...

    async def close(self) -> None:
        """Finish what is pending (batched deletes and visibility changes)."""
        ...


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One delivery of one SQS message."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    first_receive_time: float
    """Epoch seconds of the message's first receipt by anyone (informational: the 12 h visibility budget counts
    per receipt, from ``received_at``)."""
    sent_time: float
    """Epoch seconds, on SQS's clock, at which SQS took the message (``SentTimestamp``)."""
    received_at: float = 0.0
    """Epoch seconds (this replica's wall clock) at which the receive returned: informational only."""
    round_trip: float = 0.0
    """Seconds before the receive returned at which SQS may have handed the message out, at most: the lease (and
    SQS's 12-hour budget of the receipt) is counted from the moment the receive returned, less this."""

    @classmethod
    def from_api(cls, raw: Any, now: float, received_at: float = 0.0, round_trip: float = 0.0) -> ReceivedMessage:
        attributes = raw.get("Attributes", {})
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            first_receive_time=int(attributes.get("ApproximateFirstReceiveTimestamp", now * 1000)) / 1000,
            sent_time=int(attributes.get("SentTimestamp", now * 1000)) / 1000,
            received_at=received_at,
            round_trip=round_trip,
        )

    @property
    def waited_in_queue(self) -> float:
        """Seconds from SQS taking the message to its first receive, on SQS's clock alone (a lower bound of the
        message's age, never distorted by this replica's clock)."""
        return max(0.0, self.first_receive_time - self.sent_time)


class BatchEntryError(WorkerError):
    """One entry of a batch call failed."""

    def __init__(self, code: str, message: str, *, sender_fault: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.sender_fault = sender_fault
        """What SQS said; informational — :mod:`worker.taxonomy` classes the entry by its code."""


async def settle(awaitables: Sequence[Awaitable[None]]) -> list[BaseException | None]:
    """Await all, returning each one's exception (or None) in order."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    return [result if isinstance(result, BaseException) else None for result in results]


__all__ = ["BatchEntryError", "Queue", "ReceivedMessage", "settle"]
