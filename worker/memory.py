"""A standard SQS queue in memory, with the :class:`worker.queue.Queue` protocol: for tests of the dispatcher and the
lifecycle that need no server (as dramatiq's ``StubBroker`` is for its actors).

It keeps SQS's rules where the worker depends on them: a receive hides each message for the visibility timeout and
hands out a new receipt handle; a visibility change needs the message's *current* handle and the message still hidden
(``ReceiptHandleIsInvalid``, ``MessageNotInflight``), and may not reach past 12 hours after the receive
(``InvalidParameterValue``); a delete accepts any handle the message was given; a send honours ``DelaySeconds`` (at
most 900) and the queue's ``MaximumMessageSize``. It never fails on its own: tests that inject faults subclass it.
Time comes from ``clock`` (epoch seconds), so a test can move it by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callback_worker.config.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_DELAY_SECONDS,
    MAX_RECEIVE,
    MAX_VISIBILITY_SECONDS,
)
from callback_worker.worker.errors import WorkerError
from callback_worker.worker.queue import BatchEntryError, ReceivedMessage


class MessageTooLong(WorkerError):
    """A send over the queue's ``MaximumMessageSize`` (SQS answers ``InvalidParameterValue``)."""


@dataclass(eq=False)
class StoredMessage:
    """One message in a :class:`MemoryQueue`, kept after its delete for the test to look at."""

    message_id: str
    body: str
    sent_at: float
    visible_at: float
    order: int
    receive_count: int = 0
    first_received_at: float | None = None
    received_at: float = 0.0
    receipt_handle: str | None = None
    """The current receipt handle (of the latest receive)."""
    handles: list[str] = field(default_factory=list)
    deleted: bool = False
    deleted_with: str | None = None


class MemoryQueue:
    """An SQS standard queue held in a dictionary; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        visibility_timeout: int = 30,
        wait_time: int = 0,
        url: str = "memory://callbacks",
    ) -> None:
        self.clock = clock
        self.url = url
        self.visibility_timeout = visibility_timeout
        self.wait_time = wait_time
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.reachable = True
        self.messages: dict[str, StoredMessage] = {}
        self._by_handle: dict[str, StoredMessage] = {}
        self._ids = itertools.count(1)
        self.pick = 0
        """Rotates the order in which visible messages are handed out by the next receive (SQS promises none)."""

    # -- what a test uses ---------------------------------------------------------------------------------------------

    def put(self, body: str, delay: float = 0.0) -> StoredMessage:
        """Add a message now, as a producer (SageMaker, a test) would."""
        number = next(self._ids)
        now = self.clock()
        message = StoredMessage(f"m{number:05d}", body, now, now + delay, number)
        self.messages[message.message_id] = message
        return message

    def live(self) -> list[StoredMessage]:
        """Messages not deleted, visible or not, oldest first."""
        return [message for message in self.messages.values() if not message.deleted]

    def visible(self) -> list[StoredMessage]:
        now = self.clock()
        return [message for message in self.live() if message.visible_at <= now]

    def by_handle(self, receipt_handle: str) -> StoredMessage | None:
        return self._by_handle.get(receipt_handle)

    # -- the Queue protocol ------------------------------------------------------------------------------------------

    async def attributes(self) -> dict[str, str]:
        await asyncio.sleep(0)
        return {
            "VisibilityTimeout": str(self.visibility_timeout),
            "MaximumMessageSize": str(self.max_message_bytes),
            "ApproximateNumberOfMessages": str(len(self.visible())),
        }

    async def receive(self, max_messages: int) -> list[ReceivedMessage]:
        await asyncio.sleep(0)
        return self.apply_receive(max_messages)

    async def delete(self, receipt_handle: str) -> None:
        await asyncio.sleep(0)
        self.apply_delete(receipt_handle)

    async def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        await asyncio.sleep(0)
        error = self.apply_change(receipt_handle, seconds)
        if error is not None:
            raise error

    async def set_visibility_many(self, changes: Sequence[tuple[str, int]]) -> list[BatchEntryError | None]:
        await asyncio.sleep(0)
        return [self.apply_change(handle, seconds) for handle, seconds in changes]

    async def send(self, body: str, delay: int = 0) -> str:
        await asyncio.sleep(0)
        return self.apply_send(body, delay).message_id

    async def close(self) -> None:
        return None

    # -- the rules, applied at once (subclasses wrap them in faults) --------------------------------------------------

    def apply_receive(self, max_messages: int) -> list[ReceivedMessage]:
        visible = self.visible()
        if visible:
            shift = self.pick % len(visible)
            visible = visible[shift:] + visible[:shift]
        return [self._hand_out(message) for message in visible[: min(max_messages, MAX_RECEIVE)]]

    def apply_delete(self, receipt_handle: str) -> StoredMessage:
        """Delete the message ``receipt_handle`` was given for (again: no error); returns it."""
        message = self._by_handle.get(receipt_handle)
        if message is None:
            raise BatchEntryError("ReceiptHandleIsInvalid", "no such receipt handle", sender_fault=True)
        if not message.deleted:
            message.deleted, message.deleted_with = True, receipt_handle
        return message

    def apply_change(self, receipt_handle: str, seconds: int) -> BatchEntryError | None:
        """Hide the message for ``seconds`` from now, or say why SQS would refuse."""
        message = self._by_handle.get(receipt_handle)
        if message is None or message.deleted or message.receipt_handle != receipt_handle:
            return BatchEntryError(
                "ReceiptHandleIsInvalid", "not the message's current receipt handle", sender_fault=True
            )
        now = self.clock()
        if message.visible_at <= now:
            return BatchEntryError("MessageNotInflight", "the message is not in flight", sender_fault=True)
        if seconds < 0 or now + seconds > message.received_at + MAX_VISIBILITY_SECONDS:
            return BatchEntryError("InvalidParameterValue", "visibility out of range", sender_fault=True)
        message.visible_at = now + seconds
        return None

    def apply_send(self, body: str, delay: int = 0) -> StoredMessage:
        if len(body.encode()) > self.max_message_bytes:
            raise MessageTooLong(f"the body is over the queue's MaximumMessageSize ({self.max_message_bytes} bytes)")
        return self.put(body, delay=max(0, min(delay, MAX_DELAY_SECONDS)))

    def holds(self, receipt_handle: str | None) -> bool:
        """Whether ``receipt_handle`` is its message's current receipt and the message is still hidden."""
        message = self._by_handle.get(receipt_handle or "")
        return (
            message is not None
            and not message.deleted
            and message.receipt_handle == receipt_handle
            and message.visible_at > self.clock()
        )

    def _hand_out(self, message: StoredMessage) -> ReceivedMessage:
        now = self.clock()
        message.receive_count += 1
        if message.first_received_at is None:
            message.first_received_at = now
        handle = f"{message.message_id}-r{message.receive_count}"
        message.receipt_handle = handle
        message.handles.append(handle)
        message.received_at = now
        message.visible_at = now + self.visibility_timeout
        self._by_handle[handle] = message
        return ReceivedMessage(
            message_id=message.message_id,
            receipt_handle=handle,
            body=message.body,
            receive_count=message.receive_count,
            first_receive_time=message.first_received_at,
            sent_time=message.sent_at,
            received_at=now,
        )
