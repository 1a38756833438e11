"""``dlq list|answer|redrive`` against LocalStack's SQS, which has message move tasks: ``redrive`` takes the native
``StartMessageMoveTask`` path there (moto, without them, gets the fallback in test_operator_dlq.py).

LocalStack is started once for this module on a free port (about 3 s once installed; see RELIABILITY.md) and the
tests skip when it cannot run here, or with ``RELIABILITY_LOCALSTACK=off``. The emulator sends its callback messages
to LocalStack.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.ops import main
from tests.dlq_support import dead_letter_everything, depth, make_queues, visible
from tests.emulator_fixtures import create_pipeline, list_steps, one_step_definition, wait_for_status
from tests.reliability.queues import LocalStackUnavailable, localstack

LOCALSTACK_ENV = "RELIABILITY_LOCALSTACK"


@pytest.fixture(scope="module")
def localstack_sqs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get(LOCALSTACK_ENV, "auto").strip().lower() == "off":
        pytest.skip(f"{LOCALSTACK_ENV}=off")
    try:
        with localstack(Path(tmp_path_factory.mktemp("localstack")), install=False) as endpoint:
            yield endpoint
    except LocalStackUnavailable as exc:
        pytest.skip(f"LocalStack unavailable: {exc}")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_answer_and_a_native_redrive_on_localstack(
    localstack_sqs: str,
    moto_server: str,
    emulator_factory: Callable[..., ThreadedEmulatorServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", localstack_sqs)  # for the emulator started next, and the commands
    emulator = emulator_factory()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", emulator.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=localstack_sqs)
    sm = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url)
    queues = make_queues(sqs)
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", queues.source)
    pipeline = create_pipeline(sm, one_step_definition(queues.source))
    arns = [
        sm.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))["PipelineExecutionArn"]
        for _ in range(2)
    ]
    emulator.wait_idle()
    dead_letter_everything(sqs, queues, 2)

    code, out, err = cli(capsys, "dlq", "list", "--json")
    assert (code, err) == (0, ""), err
    listed = json.loads(out)["Messages"]
    assert sorted((item["PipelineExecutionArn"], item["StepName"], item["StepStatus"]) for item in listed) == [
        (arn, "A", "Executing") for arn in sorted(arns)
    ]
    assert visible(sqs, queues.dlq) == 2

    code, out, err = cli(capsys, "dlq", "answer", "--execution-arn", arns[0], "--reason", "given up")
    assert (code, err) == (0, ""), err
    wait_for_status(sm, arns[0], "Failed")

    code, out, err = cli(capsys, "dlq", "redrive", "--dry-run", "--json")
    assert (code, err) == (0, ""), err
    assert {key: json.loads(out)[key] for key in ("Method", "DryRun", "Visible")} == {
        "Method": "StartMessageMoveTask",
        "DryRun": True,
        "Visible": 1,
    }
    code, out, err = cli(capsys, "dlq", "redrive", "--json")
    assert (code, err) == (0, ""), err
    report = json.loads(out)
    assert (report["Method"], report["Started"], report["Task"]["Status"]) == ("StartMessageMoveTask", True, "RUNNING")
    deadline = time.monotonic() + 30
    while depth(sqs, queues.source) < 1:
        assert time.monotonic() < deadline, "the move task moved nothing within 30 s"
        time.sleep(0.2)
    assert depth(sqs, queues.dlq) == 0
    (message,) = sqs.receive_message(QueueUrl=queues.source, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["pipelineExecutionArn"] == arns[1]
    assert list_steps(sm, arns[1])["A"]["StepStatus"] == "Executing"
    sqs.close()
    sm.close()
