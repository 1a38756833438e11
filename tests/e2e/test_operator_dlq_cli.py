"""``callback-worker dlq`` as a subprocess, the way an operator runs it: a callback step whose message fell into the
dead-letter queue is found, redriven, dead-lettered again and answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from tests.dlq_support import dead_letter_everything, depth, make_queues
from tests.emulator_fixtures import create_pipeline, list_steps, one_step_definition, wait_for_status

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqs(moto_server: str) -> Iterator[SQSClient]:
    client = boto3.client("sqs", endpoint_url=moto_server)
    yield client
    client.close()


def run(emulator: ThreadedEmulatorServer, queue_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SAGEMAKER": emulator.endpoint_url,
        "CALLBACK_WORKER_QUEUE_URL": queue_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_operator_finds_redrives_and_answers_a_dead_lettered_callback(
    emulator: ThreadedEmulatorServer, sagemaker_client: SageMakerClient, sqs: SQSClient
) -> None:
    queues = make_queues(sqs)
    pipeline = create_pipeline(sagemaker_client, one_step_definition(queues.source))
    arn = sagemaker_client.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))[
        "PipelineExecutionArn"
    ]
    emulator.wait_idle()
    dead_letter_everything(sqs, queues, 1)
    token = list_steps(sagemaker_client, arn)["A"]["Metadata"]["Callback"]["CallbackToken"]

    listed = run(emulator, queues.source, "dlq", "list")
    assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["MESSAGE", "ID", "PIPELINE"]
    assert row.split()[1:5] == [pipeline, arn.rsplit("/", 1)[1], "A", "Executing"]
    assert f"{token[:3]}*******" in row
    assert token not in listed.stdout

    redriven = run(emulator, queues.source, "dlq", "redrive", "--json")
    assert (redriven.returncode, redriven.stderr) == (0, ""), redriven.stderr
    assert json.loads(redriven.stdout)["Moved"] == 1
    assert (depth(sqs, queues.source), depth(sqs, queues.dlq)) == (1, 0)

    dead_letter_everything(sqs, queues, 1)  # no worker answered it: back in the dead-letter queue
    answered = run(emulator, queues.source, "dlq", "answer", "--execution-arn", arn, "--reason", "gave up waiting")
    assert (answered.returncode, answered.stderr) == (0, ""), answered.stderr
    assert answered.stdout.splitlines()[1].endswith("answered with Failure; deleted")
    wait_for_status(sagemaker_client, arn, "Failed")
    assert depth(sqs, queues.dlq) == 0

    again = run(emulator, queues.source, "dlq", "answer", "--all", "--reason", "x")
    assert (again.returncode, again.stdout) == (0, "")
    assert again.stderr == f"callback-worker: no message of {queues.dlq} matches\n"
    bad = run(emulator, queues.source, "dlq", "answer", "--all")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "callback-worker: give --reason TEXT (the Failure's reason), or --succeed\n"
