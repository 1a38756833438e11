"""``dlq redrive``: move the dead-lettered messages back to the source queue.

Where SQS offers message move tasks, a ``StartMessageMoveTask`` from the dead-letter queue to the source queue does
it on the server side. Whether it does is asked, not guessed from the endpoint: ``ListMessageMoveTasks`` is called
first, and a server that does not implement it (an unknown-operation error, or an HTTP error without an AWS error in
its body, as moto answers) gets the fallback. The same call makes the native path idempotent: a task already running
for this dead-letter queue is reported instead of starting another, and stopping the command stops nothing.

The fallback receives up to 10 messages at a time (hidden for :data:`MOVE_VISIBILITY` seconds), and for each one
sends a copy (body and message attributes) to the source queue, then deletes it from the dead-letter queue. Nothing is
ever deleted before its copy is stored, so no message is lost. Ctrl-C or SIGTERM is held until the current copy is
deleted (:mod:`callback_worker.ops.interrupts`) and the messages not yet moved are made visible again, so a stopped
redrive resumed later neither loses nor duplicates a message. Only a crash (SIGKILL, power) or a failed delete between
a send and its delete leaves that one message in both queues; the next redrive moves it again, and the worker takes
the second copy as a duplicate delivery (see README, "Delivery semantics").
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError

from callback_worker.ops.aws import guarded, sqs_client
from callback_worker.ops.dlqviews import redrive_json, redrive_text
from callback_worker.ops.errors import ExitCode
from callback_worker.ops.interrupts import deferred_interrupts
from callback_worker.ops.queues import (
    DeadLetterQueue,
    Peek,
    Received,
    dead_letter_queue,
    peek,
    receive,
    source_queue_url,
)
from callback_worker.ops.tables import complain, emit
from callback_worker.worker.retrying import error_code

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

NATIVE = "StartMessageMoveTask"
FALLBACK = "receive/send/delete"
#: Seconds a received batch stays hidden while its messages are copied and deleted.
MOVE_VISIBILITY = 60
#: Error codes that say the server does not offer message move tasks.
UNSUPPORTED_CODES = frozenset(
    {
        "UnknownOperationException",
        "InvalidAction",
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
    }
)
ACTIVE_TASK_STATUSES = frozenset({"RUNNING", "CANCELLING"})
#: Tries of the ListMessageMoveTasks probe: a server without the operation answers 500, which botocore would retry.
PROBE_ATTEMPTS = 2
_MESSAGE_ATTRIBUTE_KEYS = ("DataType", "StringValue", "BinaryValue")


@guarded
def redrive(args: argparse.Namespace) -> int:
    """``dlq redrive [--queue-url URL] [--dry-run]``."""
    client = sqs_client()
    queue = dead_letter_queue(client, source_queue_url(args.queue_url))
    tasks = move_tasks(queue)
    if tasks is not None:
        report = native_redrive(client, queue, tasks, dry_run=args.dry_run)
    elif args.dry_run:
        report = {"Method": FALLBACK, "DryRun": True, "Visible": visible_messages(client, queue.url)}
    else:
        report = {"Method": FALLBACK, "Moved": move_by_hand(client, queue)}
    emit(redrive_json(queue, report) if args.json else redrive_text(queue, report))
    return ExitCode.OK


def move_tasks(queue: DeadLetterQueue) -> list[dict[str, Any]] | None:
    """The message move tasks of the dead-letter queue, or None when the server does not offer them."""
    probe = sqs_client(Config(retries={"total_max_attempts": PROBE_ATTEMPTS, "mode": "standard"}))
    try:
        response = probe.list_message_move_tasks(SourceArn=queue.arn)
    except ClientError as exc:
        if lacks_operation(exc):
            return None
        raise
    return [dict(task) for task in response.get("Results", [])]


def lacks_operation(exc: ClientError) -> bool:
    """Whether ``exc`` says the server does not implement the operation (rather than refusing this call)."""
    code = error_code(exc)
    # botocore names the error by the HTTP status when the body holds no AWS error: the server does not speak the
    # operation at all. AWS's own server errors always carry a code (InternalError, ServiceUnavailable).
    return code in UNSUPPORTED_CODES or code.isdigit()


def native_redrive(
    client: SQSClient, queue: DeadLetterQueue, tasks: list[dict[str, Any]], *, dry_run: bool
) -> dict[str, Any]:
    """Report the running task, or start one (unless ``dry_run``)."""
    active = [task for task in tasks if task.get("Status") in ACTIVE_TASK_STATUSES]
    if active:
        return {"Method": NATIVE, "Started": False, "Task": active[0]}
    if dry_run:
        return {"Method": NATIVE, "DryRun": True, "Visible": visible_messages(client, queue.url)}
    response = client.start_message_move_task(SourceArn=queue.arn, DestinationArn=queue.source_arn)
    return {"Method": NATIVE, "Started": True, "Task": {"TaskHandle": response["TaskHandle"], "Status": "RUNNING"}}


def move_by_hand(client: SQSClient, queue: DeadLetterQueue) -> int:
    """Move every visible message of the dead-letter queue to the source queue; returns how many moved."""
    moved = 0
    copies: set[str] = set()  # ids of the copies sent: one seen in the dead-letter queue has failed again
    with peek(client, queue.url) as held:
        while batch := held.hold(receive(client, queue.url, MOVE_VISIBILITY)):
            for message in batch:
                if message.message_id in copies:
                    complain(f"message {message.message_id} was moved by this redrive and is back; left there")
                    return moved
                copies.add(move_one(client, held, queue, message))
                moved += 1
    return moved


def move_one(client: SQSClient, held: Peek, queue: DeadLetterQueue, message: Received) -> str:
    """Copy ``message`` to the source queue, then delete it from the dead-letter queue; the copy's message id."""
    with deferred_interrupts():
        copy_id = str(client.send_message(**copy_request(queue.source_url, message))["MessageId"])
        try:
            client.delete_message(QueueUrl=queue.url, ReceiptHandle=message.receipt_handle)
        except ClientError:
            complain(
                f"message {message.message_id} was copied to {queue.source_url} but not deleted from "
                f"{queue.url}: a later redrive copies it again (one duplicate delivery)"
            )
            raise
        held.take(message)
    return copy_id


def copy_request(queue_url: str, message: Received) -> dict[str, Any]:
    """SendMessage arguments that copy ``message``'s body and message attributes."""
    request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message.body}
    attributes = {
        name: {key: value for key, value in attribute.items() if key in _MESSAGE_ATTRIBUTE_KEYS}
        for name, attribute in message.message_attributes.items()
    }
    if attributes:
        request["MessageAttributes"] = attributes
    return request


def visible_messages(client: SQSClient, url: str) -> int:
    """SQS's approximate count of the visible messages of ``url``."""
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))
