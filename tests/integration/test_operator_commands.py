"""The operator commands in-process (``callback_worker.ops.main``) against the emulator and moto: exact output, exit
codes, and the effect of each answer read back through the SageMaker API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.ops import ExitCode, main
from callback_worker.ops.reads import execution_steps, waiting_steps
from callback_worker.ops.tables import timestamp
from callback_worker.worker.message import Status, parse_message
from callback_worker.worker.outcome import failure, success
from tests.emulator_fixtures import (
    create_pipeline,
    list_steps,
    one_step_definition,
    receive_messages,
    two_step_definition,
    wait_for_status,
)

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

A_OUTPUTS = ["count=3", "ratio=0.25", "ok=true", "label=first"]


@dataclass
class Stage:
    """A threaded emulator (the commands use blocking boto3), clients on it and on moto, and a fresh queue."""

    emulator: ThreadedEmulatorServer
    sm: SageMakerClient
    sqs: SQSClient
    queue: str

    @property
    def queue_name(self) -> str:
        return self.queue.rsplit("/", 1)[1]

    def pipeline(self, definition: str, prefix: str = "pipeline") -> str:
        """Create a pipeline; its name."""
        return create_pipeline(self.sm, definition, f"{prefix}-{uuid.uuid4().hex[:8]}")

    def start(self, pipeline: str) -> str:
        """Start an execution of ``pipeline``; its ARN."""
        response = self.sm.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))
        return response["PipelineExecutionArn"]

    def next_message(self) -> dict[str, Any]:
        """The next callback message, once the emulator has recorded its delivery."""
        (body,) = receive_messages(self.sqs, self.queue, 1)
        self.emulator.wait_idle()
        return body


@pytest.fixture
def stage(
    emulator_factory: Callable[..., ThreadedEmulatorServer], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stage]:
    server = emulator_factory()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", server.endpoint_url)
    sm = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queue = sqs.create_queue(QueueName=f"callbacks-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    yield Stage(server, sm, sqs, queue)
    sm.close()
    sqs.close()


class Cli:
    """Runs ``callback_worker.ops.main`` and captures what it wrote."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert (code, err) == (0, ""), err
        return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def at(value: object) -> str:
    assert isinstance(value, datetime)
    return timestamp(value)


def test_two_callback_steps_one_answered_by_hand(cli: Cli, stage: Stage) -> None:
    pipeline = stage.pipeline(two_step_definition(stage.queue))
    arn = stage.start(pipeline)
    execution_id = arn.rsplit("/", 1)[1]
    token_a = stage.next_message()["token"]

    described = stage.sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert cli.ok("describe", arn).splitlines() == [
        f"Pipeline        {pipeline}",
        f"Execution       {arn}",
        f"Display name    {described['PipelineExecutionDisplayName']}",
        "Status          Executing",
        "Failure reason  -",
        f"Experiment      {pipeline}",
        f"Trial           {execution_id}",
        f"Created         {at(described['CreationTime'])}",
        f"Last modified   {at(described['LastModifiedTime'])}",
    ]
    started = at(list_steps(stage.sm, arn)["A"]["StartTime"])
    queue = stage.queue_name.ljust(len("QUEUE"))
    assert cli.ok("steps", arn).splitlines() == [
        f"STEP  STATUS     STARTED               {'QUEUE'.ljust(len(queue))}  TOKEN       OUTPUTS  FAILURE REASON",
        f"A     Executing  {started}  {queue}  {token_a[:3]}*******  -        -",
    ]

    out = cli.ok("succeed", token_a, *(f"--output={pair}" for pair in A_OUTPUTS))
    assert out == f"answered {token_a[:3]}******* with Success (execution {arn})\n"

    # B starts with A's outputs, typed by A's declarations: the hand-made answer went through.
    message_b = stage.next_message()
    expected = {"count": 3, "ratio": 0.25, "ok": True, "label": "first", "execution": execution_id}
    assert message_b["arguments"] == expected
    steps = list_steps(stage.sm, arn)
    assert steps["A"]["StepStatus"] == "Succeeded"
    assert steps["A"]["Metadata"]["Callback"]["OutputParameters"] == [
        {"Name": name, "Value": value} for name, value in (pair.split("=") for pair in A_OUTPUTS)
    ]
    rows = cli.ok("steps", arn).splitlines()
    assert [row.split()[:2] for row in rows] == [["STEP", "STATUS"], ["A", "Succeeded"], ["B", "Executing"]]
    assert "count=3, ratio=0.25, ok=true, label=first" in rows[1]
    assert token_a not in "\n".join(rows)
    assert message_b["token"] not in "\n".join(rows)

    out = cli.ok("fail", message_b["token"], "--reason", "the model was rejected")
    assert out == f"answered {message_b['token'][:3]}******* with Failure (execution {arn})\n"
    wait_for_status(stage.sm, arn, "Failed")
    assert list_steps(stage.sm, arn)["B"]["FailureReason"] == "the model was rejected"

    shown = json.loads(cli.ok("describe", "--json", arn))
    assert shown["PipelineExecutionStatus"] == "Failed"
    assert shown["FailureReason"] == "Step failure: One or multiple steps failed."  # the service's own words
    assert shown["PipelineExperimentConfig"] == {"ExperimentName": pipeline, "TrialName": execution_id}
    assert datetime.fromisoformat(shown["CreationTime"]) == described["CreationTime"].astimezone(UTC)

    listed = json.loads(cli.ok("steps", "--json", arn))
    assert [(step["StepName"], step["StepStatus"]) for step in listed] == [("A", "Succeeded"), ("B", "Failed")]
    assert listed[1]["FailureReason"] == "the model was rejected"
    assert {step["Metadata"]["Callback"]["CallbackToken"] for step in listed} == {
        f"{token_a[:3]}*******",
        f"{message_b['token'][:3]}*******",
    }
    assert execution_steps(stage.sm, arn, page_size=1) == execution_steps(stage.sm, arn)


def test_repeating_an_answer_replays_it_and_another_answer_conflicts(cli: Cli, stage: Stage) -> None:
    arn = stage.start(stage.pipeline(one_step_definition(stage.queue, outputs={"n": "Integer"})))
    token = stage.next_message()["token"]

    assert cli("succeed", token, "--output", "n=5")[0] == ExitCode.OK
    assert cli("succeed", token, "--output", "n=5")[0] == ExitCode.OK  # same ClientRequestToken: a replay
    code, out, err = cli("succeed", token, "--output", "n=6")
    assert (code, out) == (ExitCode.CONFLICT, "")
    assert err.startswith("callback-worker: ConflictException: the step already has an outcome; nothing changed (")
    assert cli("fail", token, "--reason", "late")[0] == ExitCode.CONFLICT

    assert list_steps(stage.sm, arn)["A"]["Metadata"]["Callback"]["OutputParameters"] == [{"Name": "n", "Value": "5"}]
    wait_for_status(stage.sm, arn, "Succeeded")


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_hand_made_answer_is_the_request_the_worker_sends(outcome: str, cli: Cli, stage: Stage) -> None:
    stage.start(stage.pipeline(one_step_definition(stage.queue, outputs={"n": "Integer"})))
    token = stage.next_message()["token"]
    if outcome == "success":
        stage.sm.send_pipeline_execution_step_success(**success({"n": 5}).request(token))
        argv = ["succeed", token, "--output", "n=5"]
    else:
        stage.sm.send_pipeline_execution_step_failure(**failure("the data is stale").request(token))
        argv = ["fail", token, "--reason", " the data is stale "]
    # The worker answered first; the operator's identical answer replays instead of conflicting.
    assert cli(*argv)[0] == ExitCode.OK


def test_answer_by_execution_and_step_without_knowing_the_token(cli: Cli, stage: Stage) -> None:
    arn = stage.start(stage.pipeline(one_step_definition(stage.queue, outputs={"n": "Integer"})))
    token = stage.next_message()["token"]
    code, out, err = cli("succeed", "--execution-arn", arn, "--step", "B", "--output", "n=5")
    assert (code, out) == (ExitCode.NOT_FOUND, "")
    assert "no callback step named 'B'" in err
    out = cli.ok("succeed", "--execution-arn", arn, "--step", "A", "--output", "n=5")
    assert token not in out
    assert list_steps(stage.sm, arn)["A"]["Metadata"]["Callback"]["OutputParameters"] == [{"Name": "n", "Value": "5"}]
    wait_for_status(stage.sm, arn, "Succeeded")
    for argv in (["fail", "--reason", "x"], ["fail", token, "--execution-arn", arn, "--step", "A", "--reason", "x"]):
        code, _, err = cli(*argv)
        assert code == ExitCode.USAGE, argv
        assert "--execution-arn" in err


def test_refused_outputs_send_nothing(cli: Cli, stage: Stage) -> None:
    arn = stage.start(stage.pipeline(one_step_definition(stage.queue)))
    token = stage.next_message()["token"]
    code, out, err = cli("succeed", token, "--output", "x=" + "v" * 1025)
    assert (code, out) == (ExitCode.USAGE, "")
    assert err == "callback-worker: invalid output 'x': value is 1025 characters; SageMaker accepts at most 1024\n"
    assert list_steps(stage.sm, arn)["A"]["StepStatus"] == "Executing"


def test_unknown_things_are_not_found(cli: Cli, stage: Stage) -> None:
    missing = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/nope/execution/abcdef123456"
    for argv in (
        ["succeed", "Unknown123"],
        ["fail", "Unknown123", "--reason", "x"],
        ["describe", missing],
        ["steps", missing],
        ["pending", "--pipeline", "nope"],
    ):
        code, out, err = cli(*argv)
        assert (code, out) == (ExitCode.NOT_FOUND, ""), argv
        assert err.startswith("callback-worker: ResourceNotFound: "), err
        assert "Unknown123" not in err


def test_pending_lists_waiting_callback_steps_of_running_executions(cli: Cli, stage: Stage) -> None:
    first = stage.pipeline(one_step_definition(stage.queue), "a")
    second = stage.pipeline(two_step_definition(stage.queue), "b")
    done = stage.start(first)
    cli.ok("succeed", stage.next_message()["token"])
    waiting = stage.start(first)
    token_waiting = stage.next_message()["token"]
    stopping = stage.start(second)
    token_stopping = stage.next_message()["token"]
    stage.sm.stop_pipeline_execution(PipelineExecutionArn=stopping, ClientRequestToken=str(uuid.uuid4()))
    assert stage.next_message()["status"] == Status.STOPPING
    wait_for_status(stage.sm, done, "Succeeded")

    started = {arn: list_steps(stage.sm, arn)["A"]["StartTime"] for arn in (waiting, stopping)}
    rows = cli.ok("pending").splitlines()
    assert rows[0].split() == ["PIPELINE", "EXECUTION", "STEP", "STATUS", "STARTED", "QUEUE", "TOKEN"]
    assert [row.split() for row in rows[1:]] == [
        [first, waiting.rsplit("/", 1)[1], "A", "Executing", at(started[waiting]), stage.queue_name,
         f"{token_waiting[:3]}*******"],
        [second, stopping.rsplit("/", 1)[1], "A", "Stopping", at(started[stopping]), stage.queue_name,
         f"{token_stopping[:3]}*******"],
    ]  # fmt: skip
    assert json.loads(cli.ok("pending", "--json", "--pipeline", first)) == [
        {
            "PipelineName": first,
            "PipelineExecutionArn": waiting,
            "PipelineExecutionStatus": "Executing",
            "StepName": "A",
            "StepStatus": "Executing",
            "StartTime": started[waiting].astimezone(UTC).isoformat(),
            "SqsQueueUrl": stage.queue,
            "CallbackToken": f"{token_waiting[:3]}*******",
        }
    ]
    assert waiting_steps(stage.sm, page_size=1) == waiting_steps(stage.sm)

    cli.ok("fail", token_stopping, "--reason", "stopped by hand")
    cli.ok("succeed", token_waiting)
    wait_for_status(stage.sm, stopping, "Stopped")
    assert cli("pending") == (0, "", "callback-worker: no callback step is waiting\n")
    assert cli("pending", "--json") == (0, "[]\n", "")


def test_send_test_message(cli: Cli, stage: Stage) -> None:
    out = cli.ok(
        "send-test-message", "--bare", "--queue-url", stage.queue, "--argument", "n=5", "--argument", "flag=true",
        "--argument", "name=abalone", "--argument", 'list=[1, "a"]', "--argument", 'quoted="5"',
    )  # fmt: skip
    (received,) = stage.sqs.receive_message(QueueUrl=stage.queue, WaitTimeSeconds=1)["Messages"]
    message = parse_message(received["Body"])
    assert message.arguments == {"n": 5, "flag": True, "name": "abalone", "list": [1, "a"], "quoted": "5"}
    assert message.status is Status.EXECUTING
    assert message.pipeline_name == "callback-worker-test"
    first, rest = out.split("\n", 1)
    assert first == f"sent message {received['MessageId']} to {stage.queue}"
    assert json.loads(rest) == {**json.loads(received["Body"]), "token": f"{message.token[:3]}*******"}
    assert message.token not in out


def test_send_test_message_with_token_arn_and_stopping_as_json(cli: Cli, stage: Stage) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/abcdef123456"
    shown = json.loads(
        cli.ok("send-test-message", "--json", "--queue-url", stage.queue, "--token", "AbCdE12345",
               "--execution-arn", arn, "--stopping")
    )  # fmt: skip
    (received,) = stage.sqs.receive_message(QueueUrl=stage.queue, WaitTimeSeconds=1)["Messages"]
    body = {"token": "AbCdE12345", "pipelineExecutionArn": arn, "arguments": {}, "status": "Stopping"}
    assert json.loads(received["Body"]) == body
    assert shown == {
        "MessageId": received["MessageId"],
        "QueueUrl": stage.queue,
        "Body": {**body, "token": "AbC*******"},
    }


def test_send_test_message_to_a_fifo_queue(cli: Cli, stage: Stage) -> None:
    fifo = stage.sqs.create_queue(QueueName=f"f-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"})
    cli.ok("send-test-message", "--bare", "--queue-url", fifo["QueueUrl"])
    cli.ok("send-test-message", "--bare", "--queue-url", fifo["QueueUrl"])
    received = stage.sqs.receive_message(QueueUrl=fifo["QueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert len(received["Messages"]) == 2


def test_aws_trouble_is_one_line_and_exit_1(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out, err = cli("describe", arn)
    assert (code, out) == (ExitCode.ERROR, "")
    assert (
        err
        == 'callback-worker: EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:9/"\n'
    )

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert cli("pending") == (
        ExitCode.ERROR,
        "",
        "callback-worker: NoRegionError: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)\n",
    )
