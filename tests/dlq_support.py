"""Queues with a dead-letter queue on the moto server, and ways to fill and read them, for the ``dlq`` command tests.

Nothing here stubs SQS: messages reach a dead-letter queue the way they do in production (received more often than
the redrive policy's ``maxReceiveCount``), or are sent there directly where a test needs a body no SageMaker step
would send.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Queues:
    """A source queue whose redrive policy names ``dlq`` after one receive."""

    source: str
    dlq: str


def make_queues(sqs: SQSClient, max_receive_count: int = 1) -> Queues:
    """A fresh source queue and its dead-letter queue."""
    name = f"dlq-test-{uuid.uuid4().hex[:10]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    source = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return Queues(source, dlq)


def dead_letter_everything(sqs: SQSClient, queues: Queues, expected: int, *, timeout: float = 15.0) -> None:
    """Receive the source queue's messages without deleting them until the redrive policy has moved ``expected``
    messages to the dead-letter queue."""
    deadline = time.monotonic() + timeout
    while depth(sqs, queues.dlq) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{depth(sqs, queues.dlq)} of {expected} messages reached the dead-letter queue")
        sqs.receive_message(QueueUrl=queues.source, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0)


def depth(sqs: SQSClient, url: str) -> int:
    """Visible plus in-flight messages of ``url``."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def visible(sqs: SQSClient, url: str) -> int:
    """Visible messages of ``url``."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def drain(sqs: SQSClient, url: str) -> list[dict[str, Any]]:
    """Receive and delete every visible message of ``url`` (one empty long poll ends it); the raw messages."""
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            messages.append(dict(message))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def body_counts(messages: list[dict[str, Any]]) -> Counter[str]:
    """How many times each body occurs."""
    return Counter(str(message["Body"]) for message in messages)


def callback_body(token: str, execution_arn: str, **extra: Any) -> str:
    """A callback message body as a CallbackStep sends it (plus ``extra`` keys)."""
    return json.dumps(
        {"token": token, "pipelineExecutionArn": execution_arn, "arguments": {}, "status": "Executing", **extra}
    )
