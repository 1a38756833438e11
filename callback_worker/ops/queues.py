"""The queue a ``dlq`` command works on, its dead-letter queue, and reading a queue without keeping its messages.

The source queue is ``--queue-url`` or, like the worker's, ``CALLBACK_WORKER_QUEUE_URL``; its dead-letter queue is the
``deadLetterTargetArn`` of its ``RedrivePolicy`` attribute, looked up with GetQueueUrl.

SQS has no "peek": reading a message is receiving it, which hides it and adds one to its ``ApproximateReceiveCount``.
:func:`peek` receives every visible message with a short visibility timeout (so that later receives bring the others)
and makes whatever the caller did not take visible again when it ends (ChangeMessageVisibilityBatch to 0), however it
ends; if the process dies instead, the messages reappear by themselves when the timeout runs out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from callback_worker.ops.errors import NotFoundError, UsageError
from callback_worker.ops.tables import complain

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

QUEUE_URL_ENV = "CALLBACK_WORKER_QUEUE_URL"
#: Seconds a message read by ``dlq list`` stays hidden at most, should the command die before releasing it.
PEEK_VISIBILITY = 30
#: Seconds a long poll waits: an empty answer then means that no message is visible.
RECEIVE_WAIT = 1
#: Most messages one command reads from a dead-letter queue.
MAX_PEEK = 1_000
#: SQS limits: messages per receive, entries per batch call.
RECEIVE_MAX = 10
BATCH_MAX = 10


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """A source queue and the dead-letter queue its redrive policy names."""

    source_url: str
    source_arn: str
    url: str
    arn: str
    max_receive_count: int | None


@dataclass(frozen=True, slots=True)
class Received:
    """One received SQS message: what the commands need of ReceiveMessage's answer."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)
    message_attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_response(cls, message: Any) -> Received:
        return cls(
            str(message["MessageId"]),
            str(message["ReceiptHandle"]),
            str(message.get("Body", "")),
            dict(message.get("Attributes") or {}),
            dict(message.get("MessageAttributes") or {}),
        )


def source_queue_url(given: str | None) -> str:
    """``--queue-url``, else ``CALLBACK_WORKER_QUEUE_URL``; a UsageError when neither is set."""
    url = given or os.environ.get(QUEUE_URL_ENV, "").strip()
    if not url:
        raise UsageError(f"give --queue-url, or set {QUEUE_URL_ENV} (the queue the worker reads)")
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"the queue URL {url[:80]!r} is not an http(s) URL")
    return url


def dead_letter_queue(client: SQSClient, source_url: str) -> DeadLetterQueue:
    """The dead-letter queue of ``source_url``, from its ``RedrivePolicy``; NotFoundError when it has none."""
    attributes = client.get_queue_attributes(QueueUrl=source_url, AttributeNames=["QueueArn", "RedrivePolicy"])
    values = attributes.get("Attributes", {})
    policy_text = values.get("RedrivePolicy")
    if not policy_text:
        raise NotFoundError(f"queue {source_url} has no redrive policy, so no dead-letter queue")
    try:
        policy = json.loads(policy_text)
        target = str(policy["deadLetterTargetArn"])
    except (ValueError, KeyError, TypeError):
        raise NotFoundError(f"queue {source_url} has a redrive policy without a deadLetterTargetArn") from None
    parts = target.split(":")
    if len(parts) != 6 or parts[2] != "sqs":  # arn:PARTITION:sqs:REGION:ACCOUNT:NAME
        raise NotFoundError(f"the redrive policy of {source_url} names {target!r}, not an SQS queue ARN")
    url = client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
    count = policy.get("maxReceiveCount")
    return DeadLetterQueue(source_url, values.get("QueueArn", ""), url, target, int(count) if count else None)


def receive(client: SQSClient, url: str, visibility: int, wait: int = RECEIVE_WAIT) -> list[Received]:
    """One ReceiveMessage of up to 10 messages, with every attribute, hidden for ``visibility`` seconds."""
    response = client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=RECEIVE_MAX,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return [Received.from_response(message) for message in response.get("Messages", [])]


class Peek:
    """Messages read from a queue and still hidden; :meth:`take` those the caller deleted, the rest are released."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self.client = client
        self.url = url
        self.messages: list[Received] = []
        self._held: dict[str, Received] = {}

    def read_all(self, visibility: int, limit: int = MAX_PEEK) -> list[Received]:
        """Receive until no message is visible (or ``limit`` are held); each message once, oldest receive first."""
        while len(self.messages) < limit:
            batch = self.hold(receive(self.client, self.url, visibility))
            if not batch:
                break
        if len(self.messages) >= limit:
            complain(f"read the first {limit} messages only; run the command again for the rest")
        return list(self.messages)

    def hold(self, batch: Sequence[Received]) -> list[Received]:
        """Keep ``batch`` as held (to release unless taken); returns the messages not held already."""
        fresh = [item for item in batch if item.message_id not in self._held]
        for item in fresh:
            self.messages.append(item)
            self._held[item.message_id] = item
        return fresh

    def take(self, message: Received) -> None:
        """``message`` is gone from the queue (deleted): nothing to release."""
        self._held.pop(message.message_id, None)

    def release(self, messages: Sequence[Received] | None = None) -> None:
        """Make ``messages`` (default: every one still held) visible again at once; failures are reported, not
        raised: a message not released reappears when its visibility timeout runs out."""
        chosen = list(self._held.values()) if messages is None else messages
        for start in range(0, len(chosen), BATCH_MAX):
            batch = chosen[start : start + BATCH_MAX]
            entries = [
                {"Id": str(index), "ReceiptHandle": item.receipt_handle, "VisibilityTimeout": 0}
                for index, item in enumerate(batch)
            ]
            try:
                answer = self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                complain(f"could not release {len(batch)} message(s); they reappear by themselves ({exc})")
                continue
            failed = {entry["Id"] for entry in answer.get("Failed", [])}
            for index, item in enumerate(batch):
                if str(index) not in failed:
                    self._held.pop(item.message_id, None)


@contextmanager
def peek(client: SQSClient, url: str) -> Iterator[Peek]:
    """A :class:`Peek` of ``url`` whose still-held messages are released when the block ends, however it ends."""
    held = Peek(client, url)
    try:
        yield held
    finally:
        held.release()
