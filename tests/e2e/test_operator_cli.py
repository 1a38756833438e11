"""The operator commands as a subprocess, the way an operator runs them, on a real emulator execution.

They run through ``python -m callback_worker.cli`` once ``callback_worker.cli.build_parser()`` registers them, and
through ``python -m callback_worker.ops`` (the same parser, on its own) until then.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

import callback_worker.cli
from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.worker.message import parse_message
from tests.emulator_fixtures import create_pipeline, list_steps, receive_messages, two_step_definition, wait_for_status

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

REPO = Path(__file__).resolve().parents[2]


def console_module() -> str:
    wired = any(
        isinstance(action, argparse._SubParsersAction) and "succeed" in action.choices
        for action in callback_worker.cli.build_parser()._actions
    )
    return "callback_worker.cli" if wired else "callback_worker.ops"


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(emulator: ThreadedEmulatorServer) -> Run:
    """``run(*args)``: the console script with SageMaker on ``emulator`` and SQS on the moto server."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SAGEMAKER": emulator.endpoint_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    module = console_module()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


@pytest.fixture
def sqs(moto_server: str) -> Iterator[SQSClient]:
    client = boto3.client("sqs", endpoint_url=moto_server)
    yield client
    client.close()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int, start: str) -> None:
    assert (result.returncode, result.stdout) == (code, ""), result.stderr
    assert result.stderr.startswith(f"callback-worker: {start}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback


def test_an_operator_answers_one_of_two_callback_steps(
    run: Run, emulator: ThreadedEmulatorServer, sagemaker_client: SageMakerClient, sqs: SQSClient
) -> None:
    queue = sqs.create_queue(QueueName=f"ops-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    pipeline = create_pipeline(sagemaker_client, two_step_definition(queue))
    arn = sagemaker_client.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))[
        "PipelineExecutionArn"
    ]
    (message_a,) = receive_messages(sqs, queue, 1)
    emulator.wait_idle()
    token_a = message_a["token"]
    masked_a = f"{token_a[:3]}*******"

    (row,) = ok(run("pending", "--pipeline", pipeline)).splitlines()[1:]
    assert row.split()[:4] == [pipeline, arn.rsplit("/", 1)[1], "A", "Executing"]
    assert row.split()[-1] == masked_a
    assert "Status          Executing" in ok(run("describe", arn)).splitlines()

    refused(run("succeed", token_a, "--output", "count"), 2, "--output 'count' is not NAME=VALUE")
    refused(run("succeed", token_a[:-1] + "!"), 2, "a callback token is 10 letters and digits")
    assert list_steps(sagemaker_client, arn)["A"]["StepStatus"] == "Executing"  # nothing was sent

    answer = run("succeed", token_a, "--output", "count=3", "--output", "ratio=0.25", "--output", "ok=true",
                 "--output", "label=by hand", "--json")  # fmt: skip
    assert json.loads(ok(answer)) == {"Outcome": "Success", "CallbackToken": masked_a, "PipelineExecutionArn": arn}
    step_a = list_steps(sagemaker_client, arn)["A"]
    assert step_a["StepStatus"] == "Succeeded"
    assert step_a["Metadata"]["Callback"]["OutputParameters"] == [
        {"Name": "count", "Value": "3"},
        {"Name": "ratio", "Value": "0.25"},
        {"Name": "ok", "Value": "true"},
        {"Name": "label", "Value": "by hand"},
    ]
    (message_b,) = receive_messages(sqs, queue, 1)
    emulator.wait_idle()
    assert message_b["arguments"]["label"] == "by hand"

    refused(run("fail", token_a, "--reason", "too late"), 4, "ConflictException: the step already has an outcome")
    refused(run("fail", "Unknown123", "--reason", "x"), 3, "ResourceNotFound: ")

    steps = ok(run("steps", arn)).splitlines()
    assert [line.split()[:2] for line in steps] == [["STEP", "STATUS"], ["A", "Succeeded"], ["B", "Executing"]]
    assert "count=3, ratio=0.25, ok=true, label=by hand" in steps[1]
    assert token_a not in "\n".join(steps)
    assert message_b["token"] not in "\n".join(steps)

    ok(run("fail", message_b["token"], "--reason", "rejected by the operator"))
    described = wait_for_status(sagemaker_client, arn, "Failed")
    shown = json.loads(ok(run("describe", "--json", arn)))
    assert shown["PipelineExecutionStatus"] == "Failed"
    assert shown["FailureReason"] == described["FailureReason"]
    assert shown["PipelineExperimentConfig"] == described["PipelineExperimentConfig"]


def test_send_test_message_bare_puts_a_message_the_worker_can_read(run: Run, sqs: SQSClient) -> None:
    queue = sqs.create_queue(QueueName=f"trial-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    out = ok(
        run("send-test-message", "--bare", "--queue-url", queue, "--argument", "handler=echo", "--argument", "n=5")
    )
    (received,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    message = parse_message(received["Body"])
    assert message.arguments == {"handler": "echo", "n": 5}
    assert out.splitlines()[0] == f"sent message {received['MessageId']} to {queue}"
    assert message.token not in out


def test_send_test_message_on_the_emulator_starts_a_one_step_execution_whose_token_is_real(
    run: Run, sqs: SQSClient, sagemaker_client: SageMakerClient
) -> None:
    queue = sqs.create_queue(QueueName=f"trial-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    out = ok(run("send-test-message", "--queue-url", queue, "--argument", "handler=echo", "--argument", "n=5"))
    (received,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)["Messages"]
    message = parse_message(received["Body"])
    assert message.arguments == {"handler": "echo", "n": 5}
    assert out.splitlines()[0] == f"started execution {message.pipeline_execution_arn}"
    [step] = list_steps(sagemaker_client, message.pipeline_execution_arn).values()
    assert (step["StepName"], step["StepStatus"]) == ("TestStep", "Executing")
    assert step["Metadata"]["Callback"]["CallbackToken"] == message.token  # the token SageMaker issued
    assert message.token not in out
    again = ok(
        run("send-test-message", "--json", "--queue-url", queue, "--argument", "handler=echo", "--argument", "n=5")
    )
    second = json.loads(again)["PipelineExecutionArn"]
    assert second != message.pipeline_execution_arn
    assert second.split("/execution/")[0] == message.pipeline_execution_arn.split("/execution/")[0]  # one pipeline
