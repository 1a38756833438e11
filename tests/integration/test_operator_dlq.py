"""``dlq list|answer|redrive`` and ``pending --older-than`` in-process (``callback_worker.ops.main``) against the
emulator and the moto server: callback messages dead-lettered by a real redrive policy, answers read back through
the SageMaker API, and what is left in both queues."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.ops import ExitCode, main
from callback_worker.worker.outcome import failure
from tests.dlq_support import (
    Queues,
    body_counts,
    callback_body,
    dead_letter_everything,
    depth,
    drain,
    make_queues,
    visible,
)
from tests.emulator_fixtures import create_pipeline, list_steps, one_step_definition, wait_for_status

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

UNREADABLE = "{not json"


@dataclass
class Stage:
    """An emulator, clients on it and on moto, and a source queue with its dead-letter queue."""

    emulator: ThreadedEmulatorServer
    sm: SageMakerClient
    sqs: SQSClient
    queues: Queues

    def waiting_executions(self, count: int, outputs: dict[str, str] | None = None) -> list[str]:
        """Start ``count`` executions of a one-step pipeline; their ARNs, once each step's message is queued."""
        name = create_pipeline(self.sm, one_step_definition(self.queues.source, outputs=outputs))
        arns = [
            self.sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=str(uuid.uuid4()))[
                "PipelineExecutionArn"
            ]
            for _ in range(count)
        ]
        self.emulator.wait_idle()
        return arns

    def token_of(self, arn: str) -> str:
        return str(list_steps(self.sm, arn)["A"]["Metadata"]["Callback"]["CallbackToken"])


@pytest.fixture
def stage(
    emulator_factory: Callable[..., ThreadedEmulatorServer], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stage]:
    server = emulator_factory()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", server.endpoint_url)
    sm = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queues = make_queues(sqs)
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", queues.source)
    yield Stage(server, sm, sqs, queues)
    sm.close()
    sqs.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = cli(capsys, *argv, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_list_shows_each_dead_lettered_callback_and_leaves_the_queue_as_it_was(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    arns = stage.waiting_executions(2)
    dead_letter_everything(stage.sqs, stage.queues, 2)
    crashed = callback_body("Crashed123", arns[0], callbackWorkerContinuation={"attempt": 3, "continuations": 1})
    stage.sqs.send_message(QueueUrl=stage.queues.dlq, MessageBody=crashed)
    stage.sqs.send_message(QueueUrl=stage.queues.dlq, MessageBody=UNREADABLE)

    code, out, err = cli(capsys, "dlq", "list")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["MESSAGE", "ID", "PIPELINE", "EXECUTION"]
    assert len(rows) == 4
    for arn in arns:
        token = stage.token_of(arn)
        (row,) = [row for row in rows if arn.rsplit("/", 1)[1] in row and f"{token[:3]}*******" in row]
        assert row.split()[3:5] == ["A", "Executing"]
        assert token not in out
    assert "Cra*******" in out
    assert "the handler crashed 2 time(s); the handler asked to be called again 1 time(s)" in out
    assert "unreadable body: body is not JSON" in out

    # The messages are all still there and visible at once: list released what it read.
    assert visible(stage.sqs, stage.queues.dlq) == 4
    assert depth(stage.sqs, stage.queues.source) == 0

    listed = ok_json(capsys, "dlq", "list")
    assert listed["QueueUrl"] == stage.queues.source
    assert listed["DeadLetterQueueUrl"] == stage.queues.dlq
    assert listed["MaxReceiveCount"] == 1
    by_execution = {item["PipelineExecutionArn"]: item for item in listed["Messages"] if item["Status"]}
    first = by_execution[arns[1]]
    assert (first["StepName"], first["StepStatus"], first["Status"]) == ("A", "Executing", "Executing")
    # At least the receive that moved it and this listing's own.
    assert first["ApproximateReceiveCount"] >= 2
    assert 0 <= first["AgeSeconds"] < 120
    assert datetime.fromisoformat(first["SentTimestamp"]) <= datetime.now(UTC)
    (unreadable,) = [item for item in listed["Messages"] if item["Status"] is None]
    assert unreadable["CallbackToken"] is None
    assert unreadable["PipelineExecutionArn"] is None
    assert visible(stage.sqs, stage.queues.dlq) == 4


def test_answer_fails_one_execution_then_succeeds_the_rest_and_repeats_harmlessly(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    arns = stage.waiting_executions(3, outputs={"n": "Integer"})
    dead_letter_everything(stage.sqs, stage.queues, 3)

    dry = ok_json(capsys, "dlq", "answer", "--all", "--reason", "x", "--dry-run")
    assert sorted(item["Result"] for item in dry["Messages"]) == ["would answer"] * 3
    assert visible(stage.sqs, stage.queues.dlq) == 3
    assert {list_steps(stage.sm, arn)["A"]["StepStatus"] for arn in arns} == {"Executing"}

    code, out, err = cli(capsys, "dlq", "answer", "--execution-arn", arns[0], "--reason", "the data never came")
    assert (code, err) == (0, "")
    (row,) = out.splitlines()[1:]
    assert row.endswith("A     " + f"{stage.token_of(arns[0])[:3]}*******  answered with Failure; deleted")
    wait_for_status(stage.sm, arns[0], "Failed")
    assert list_steps(stage.sm, arns[0])["A"]["FailureReason"] == "the data never came"
    assert visible(stage.sqs, stage.queues.dlq) == 2  # the others were released at once

    # The same command again: nothing of that execution is left, and nothing changes.
    code, out, err = cli(capsys, "dlq", "answer", "--execution-arn", arns[0], "--reason", "the data never came")
    assert (code, out) == (0, "")
    assert err == f"callback-worker: no message of {stage.queues.dlq} matches\n"

    answered = ok_json(capsys, "dlq", "answer", "--all", "--succeed", "--output", "n=7")
    assert answered["Outcome"] == "Success"
    assert sorted((item["PipelineExecutionArn"], item["Result"], item["Deleted"]) for item in answered["Messages"]) == [
        (arn, "answered", True) for arn in sorted(arns[1:])
    ]
    for arn in arns[1:]:
        wait_for_status(stage.sm, arn, "Succeeded")
        assert list_steps(stage.sm, arn)["A"]["Metadata"]["Callback"]["OutputParameters"] == [
            {"Name": "n", "Value": "7"}
        ]
    assert depth(stage.sqs, stage.queues.dlq) == 0


def test_a_step_answered_meanwhile_counts_as_done_and_a_message_without_a_known_token_is_kept(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    (arn,) = stage.waiting_executions(1)
    dead_letter_everything(stage.sqs, stage.queues, 1)
    token = stage.token_of(arn)
    # The worker (or another operator) answered with its own reason before this answer.
    stage.sm.send_pipeline_execution_step_failure(**failure("answered by the worker").request(token))
    stage.sqs.send_message(QueueUrl=stage.queues.dlq, MessageBody=callback_body("Unknown123", arn))
    stage.sqs.send_message(QueueUrl=stage.queues.dlq, MessageBody=UNREADABLE)

    code, out, err = cli(capsys, "dlq", "answer", "--all", "--reason", "given up", "--json")
    assert (code, err) == (ExitCode.NOT_FOUND, "")
    results = {
        item["CallbackToken"]: (item["Result"], item["Why"], item["Deleted"]) for item in json.loads(out)["Messages"]
    }
    assert results == {
        f"{token[:3]}*******": ("already finished", "the step is Failed", True),
        "Unk*******": ("refused", "not listed under this execution", False),
        None: ("no token", None, False),
    }
    assert list_steps(stage.sm, arn)["A"]["FailureReason"] == "answered by the worker"
    left = drain(stage.sqs, stage.queues.dlq)
    assert sorted(body_counts(left)) == sorted([callback_body("Unknown123", arn), UNREADABLE])


def test_answer_by_message_id_and_usage_errors(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    arns = stage.waiting_executions(2)
    dead_letter_everything(stage.sqs, stage.queues, 2)
    listed = ok_json(capsys, "dlq", "list")["Messages"]
    chosen = next(item for item in listed if item["PipelineExecutionArn"] == arns[1])

    answered = ok_json(capsys, "dlq", "answer", "--message-id", chosen["MessageId"], "--reason", "by id")
    assert [item["PipelineExecutionArn"] for item in answered["Messages"]] == [arns[1]]
    assert list_steps(stage.sm, arns[1])["A"]["StepStatus"] == "Failed"
    assert list_steps(stage.sm, arns[0])["A"]["StepStatus"] == "Executing"

    for argv, message in [
        (["--all"], "give --reason TEXT (the Failure's reason), or --succeed"),
        (["--reason", "x"], "give --all, or --execution-arn / --message-id (not both)"),
        (["--all", "--message-id", "m", "--reason", "x"], "give --all, or --execution-arn / --message-id (not both)"),
        (["--all", "--succeed", "--reason", "x"], "--reason goes with a Failure; --succeed sends a Success"),
        (["--all", "--output", "n=1", "--reason", "x"], "--output goes with --succeed"),
        (["--all", "--reason", " "], "--reason is empty"),
    ]:
        assert cli(capsys, "dlq", "answer", *argv) == (ExitCode.USAGE, "", f"callback-worker: {message}\n")
    assert visible(stage.sqs, stage.queues.dlq) == 1


def test_queue_without_a_redrive_policy_and_missing_queue_url(
    stage: Stage, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = stage.sqs.create_queue(QueueName=f"plain-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    code, out, err = cli(capsys, "dlq", "list", "--queue-url", plain)
    assert (code, out) == (ExitCode.NOT_FOUND, "")
    assert err == f"callback-worker: queue {plain} has no redrive policy, so no dead-letter queue\n"
    monkeypatch.delenv("CALLBACK_WORKER_QUEUE_URL")
    code, out, err = cli(capsys, "dlq", "redrive")
    assert (code, out) == (ExitCode.USAGE, "")
    assert "give --queue-url, or set CALLBACK_WORKER_QUEUE_URL" in err


def test_redrive_falls_back_to_receive_send_delete_on_moto_and_is_idempotent(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [callback_body(f"Token{index:05d}", f"arn-{index}") for index in range(12)]
    for body in bodies:
        stage.sqs.send_message(
            QueueUrl=stage.queues.dlq,
            MessageBody=body,
            MessageAttributes={"origin": {"DataType": "String", "StringValue": body[-20:]}},
        )

    planned = ok_json(capsys, "dlq", "redrive", "--dry-run")
    assert (planned["Method"], planned["DryRun"], planned["Visible"]) == ("receive/send/delete", True, 12)
    assert visible(stage.sqs, stage.queues.dlq) == 12

    code, out, err = cli(capsys, "dlq", "redrive")
    assert (code, err) == (0, "")
    assert out == f"moved 12 message(s) from {stage.queues.dlq} to {stage.queues.source} (receive/send/delete)\n"
    assert ok_json(capsys, "dlq", "redrive")["Moved"] == 0
    assert depth(stage.sqs, stage.queues.dlq) == 0
    moved = drain(stage.sqs, stage.queues.source)
    assert body_counts(moved) == dict.fromkeys(bodies, 1)
    assert {message["MessageAttributes"]["origin"]["StringValue"] for message in moved} == {
        body[-20:] for body in bodies
    }


def test_pending_older_than_keeps_the_steps_waiting_longer(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    (arn,) = stage.waiting_executions(1)
    started = list_steps(stage.sm, arn)["A"]["StartTime"]
    pipeline = arn.split("/")[1]

    code, out, err = cli(capsys, "pending", "--pipeline", pipeline, "--older-than", "1h")
    assert (code, out, err) == (0, "", "callback-worker: no callback step is waiting since more than 1h\n")
    while datetime.now(UTC) - started.astimezone(UTC) <= datetime.resolution * 1_100_000:  # 1.1 s
        time.sleep(0.05)
    (item,) = ok_json(capsys, "pending", "--pipeline", pipeline, "--older-than", "1s")
    assert (item["PipelineExecutionArn"], item["StepName"]) == (arn, "A")
    assert cli(capsys, "pending", "--older-than", "soon") == (
        ExitCode.USAGE,
        "",
        "callback-worker: --older-than 'soon' is not a duration: expected a number and a unit (s, m, h, d, w), "
        "such as 90m, 2h, 3d or 1h30m\n",
    )
