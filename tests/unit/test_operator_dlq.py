"""The pure parts of ``dlq`` and ``pending --older-than``: durations, arguments, selection, what a body says, how a
server without message move tasks is recognised, views, and interrupts held across a send and its delete."""

from __future__ import annotations

import argparse
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callback_worker.ops import add_commands
from callback_worker.ops.deadletters import DeadLetter, read_dead_letter
from callback_worker.ops.dlq import chosen_outcome, selector
from callback_worker.ops.dlqviews import Answered, answered_text, list_text
from callback_worker.ops.durations import age_text, parse_duration
from callback_worker.ops.errors import UsageError
from callback_worker.ops.interrupts import deferred_interrupts
from callback_worker.ops.queues import Received, source_queue_url
from callback_worker.ops.reads import started_before
from callback_worker.ops.redrive import copy_request, lacks_operation
from callback_worker.ops.views import WaitingStep
from callback_worker.worker.outcome import Failure, Success

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/7pinimwddh3a"
OTHER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/000000000000"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callback-worker")
    add_commands(parser.add_subparsers(required=True, metavar="COMMAND"))
    return parser.parse_args(argv)


def received(body: str, message_id: str = "m-1", **attributes: str) -> Received:
    return Received(message_id, "receipt", body, dict(attributes))


TOKEN = "26vcYbeWsZ"


def body(token: str = TOKEN, arn: str = ARN, **extra: Any) -> str:
    return json.dumps({"token": token, "pipelineExecutionArn": arn, "arguments": {}, "status": "Executing", **extra})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("2h", 7200), ("3d", 259_200), ("1h30m", 5400), ("45s", 45), ("1w", 604_800), (" 2H ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is not a duration"),
        ("90", "is not a duration"),
        ("m", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("30m2h", "is not a duration"),  # largest unit first
        ("-1h", "is not a duration"),
        ("0s", "is not longer than zero"),
        ("4000d", "is longer than 3650 days"),
    ],
)
def test_bad_durations_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=f"^--older-than {text!r} {problem}"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("age", "shown"),
    [(timedelta(seconds=-5), "0s"), (timedelta(seconds=45), "45s"), (timedelta(minutes=12, seconds=3), "12m03s"),
     (timedelta(hours=3, minutes=5), "3h05m"), (timedelta(days=2, hours=4, minutes=59), "2d04h")],
)  # fmt: skip
def test_ages(age: timedelta, shown: str) -> None:
    assert age_text(age) == shown


def test_older_than_keeps_steps_started_before_the_cutoff() -> None:
    def waiting(started: datetime | None) -> WaitingStep:
        step = {"StepName": "A", "StartTime": started} if started else {"StepName": "A"}
        return WaitingStep("train", ARN, "Executing", step)

    old, recent, unknown = waiting(NOW - timedelta(hours=3)), waiting(NOW - timedelta(minutes=5)), waiting(None)
    assert started_before([old, recent, unknown], NOW - parse_duration("2h")) == [old]


def test_dlq_arguments() -> None:
    args = parse("dlq", "answer", "--execution-arn", ARN, "--message-id", "m", "--reason", "r", "--dry-run", "--json")
    assert (args.execution_arns, args.message_ids, args.reason) == ([ARN], ["m"], "r")
    assert (args.dry_run, args.json) == (True, True)
    assert (args.all, args.succeed, args.outputs, args.queue_url) == (False, False, None, None)
    assert parse("dlq", "redrive", "--queue-url", "http://q", "--dry-run").queue_url == "http://q"
    assert parse("pending", "--older-than", "2h").older_than == "2h"
    assert callable(parse("dlq", "list").command)


def test_outcome_and_selection() -> None:
    assert chosen_outcome(parse("dlq", "answer", "--all", "--reason", " late ")) == Failure("late")
    assert chosen_outcome(parse("dlq", "answer", "--all", "--succeed", "--output", "n=1")) == Success((("n", "1"),))
    letters = [read_dead_letter(received(body(arn=arn), f"m-{index}")) for index, arn in enumerate([ARN, OTHER_ARN])]
    assert selector(parse("dlq", "answer", "--all", "--reason", "r"))(letters) == letters
    by_arn = selector(parse("dlq", "answer", "--execution-arn", OTHER_ARN, "--reason", "r"))
    assert by_arn(letters) == [letters[1]]
    by_id = selector(parse("dlq", "answer", "--message-id", "m-0", "--message-id", "m-9", "--reason", "r"))
    assert by_id(letters) == [letters[0]]
    with pytest.raises(UsageError, match="is not a pipeline execution ARN"):
        selector(parse("dlq", "answer", "--execution-arn", "arn:nope", "--reason", "r"))


def test_source_queue_url_from_the_option_or_the_worker_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", "http://env/q")
    assert source_queue_url(None) == "http://env/q"
    assert source_queue_url("https://given/q") == "https://given/q"
    with pytest.raises(UsageError, match="is not an http"):
        source_queue_url("sqs://q")
    monkeypatch.delenv("CALLBACK_WORKER_QUEUE_URL")
    with pytest.raises(UsageError, match="give --queue-url, or set CALLBACK_WORKER_QUEUE_URL"):
        source_queue_url(None)


@pytest.mark.parametrize(
    ("text", "token", "arn", "status", "why"),
    [
        (body(), "26vcYbeWsZ", ARN, "Executing", None),
        (body(status="stopping"), "26vcYbeWsZ", ARN, "Stopping", "the pipeline is stopping"),
        (body(callbackWorkerContinuation={"attempt": 3}), "26vcYbeWsZ", ARN, "Executing",
         "the handler crashed 2 time(s)"),
        (body(callbackWorkerContinuation={"continuations": 4}), "26vcYbeWsZ", ARN, "Executing",
         "the handler asked to be called again 4 time(s)"),
        ('{"token": "26vcYbeWsZ", "pipelineExecutionArn": "x"', "26vcYbeWsZ", "x", None,
         "unreadable body: body is not JSON: JSONDecodeError: Expecting ',' delimiter: line 1 column 52 (char 51)"),
        (body(arn="not-an-arn"), "26vcYbeWsZ", "not-an-arn", None,
         "unreadable body: 'pipelineExecutionArn' is not a pipeline execution ARN "
         "(got a 10-character string 'not-an-arn')"),
        ("[]", None, None, None, "unreadable body: body is JSON list, not an object"),
    ],
)  # fmt: skip
def test_what_a_body_says(text: str, token: str | None, arn: str | None, status: str | None, why: str | None) -> None:
    letter = read_dead_letter(received(text, SentTimestamp="1777636800000", ApproximateReceiveCount="4"))
    assert (letter.token, letter.execution_arn, letter.status, letter.why) == (token, arn, status, why)
    assert letter.receive_count == 4
    assert letter.sent == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_views_mask_tokens_and_show_results() -> None:
    letter = DeadLetter(
        received(body(), SentTimestamp=str(int((NOW - timedelta(hours=3)).timestamp() * 1000)),
                 ApproximateReceiveCount="6"),
        "26vcYbeWsZ", ARN, "Executing", None, "Approve", "Executing",
    )  # fmt: skip
    assert list_text([letter], NOW).splitlines() == [
        "MESSAGE ID  PIPELINE  EXECUTION     STEP     STEP STATUS  RECEIVES  AGE    TOKEN       WHY",
        "m-1         train     7pinimwddh3a  Approve  Executing    6         3h00m  26v*******  -",
    ]
    unreadable = read_dead_letter(received("{", "m-2"))
    results = [Answered(letter, "answered", deleted=True), Answered(unreadable, "no token", deleted=False)]
    assert answered_text("Failure", results).splitlines() == [
        "MESSAGE ID  EXECUTION     STEP     TOKEN       RESULT",
        "m-1         7pinimwddh3a  Approve  26v*******  answered with Failure; deleted",
        "m-2         -             -        -           no token; kept",
    ]


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "ListMessageMoveTasks")


@pytest.mark.parametrize(
    ("code", "status", "lacks"),
    [
        ("500", 500, True),  # moto: an HTML error page, no AWS error in the body
        ("501", 501, True),
        ("UnknownOperationException", 400, True),
        ("AWS.SimpleQueueService.UnsupportedOperation", 400, True),
        ("InternalError", 500, False),  # AWS's own server error: worth an error, not a fallback
        ("AccessDenied", 403, False),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, False),
    ],
)
def test_a_server_without_message_move_tasks_is_recognised_by_its_answer(code: str, status: int, lacks: bool) -> None:
    assert lacks_operation(client_error(code, status)) is lacks


def test_copy_keeps_body_and_message_attributes() -> None:
    message = Received(
        "m", "r", "body", {"SentTimestamp": "1"},
        {"a": {"DataType": "String", "StringValue": "x", "StringListValues": []}, "b": {"DataType": "Binary",
                                                                                          "BinaryValue": b"\x00"}},
    )  # fmt: skip
    assert copy_request("http://q", message) == {
        "QueueUrl": "http://q",
        "MessageBody": "body",
        "MessageAttributes": {
            "a": {"DataType": "String", "StringValue": "x"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00"},
        },
    }
    assert copy_request("http://q", Received("m", "r", "plain")) == {"QueueUrl": "http://q", "MessageBody": "plain"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_waits_for_the_end_of_the_block(sig: signal.Signals) -> None:
    finished = []

    def send_and_delete() -> None:
        with deferred_interrupts():
            os.kill(os.getpid(), sig)
            finished.append("send")
            finished.append("delete")

    with pytest.raises(KeyboardInterrupt):
        send_and_delete()
    assert finished == ["send", "delete"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_no_interrupt_no_exception() -> None:
    with deferred_interrupts():
        pass
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
