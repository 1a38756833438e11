"""``describe`` and ``steps`` take an execution id where one execution of the account and region has it, against
the emulator: the id of the demo's and the logs' lines works like the ARN; an id no execution has, or one that
executions of two pipelines share, is one line and its exit code."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.ops import ExitCode, main
from tests.emulator_fixtures import create_pipeline, one_step_definition, receive_messages

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient


@pytest.fixture
def server(
    emulator_factory: Callable[..., ThreadedEmulatorServer], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> ThreadedEmulatorServer:
    started = emulator_factory()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", started.endpoint_url)
    return started


@pytest.fixture
def sagemaker(server: ThreadedEmulatorServer) -> Iterator[SageMakerClient]:
    client = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    yield client
    client.close()


@pytest.fixture
def queue_url_here(moto_server: str) -> str:
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    return str(sqs.create_queue(QueueName=f"ids-{uuid.uuid4().hex[:10]}")["QueueUrl"])


def start(sagemaker: SageMakerClient, queue_url: str) -> str:
    pipeline = create_pipeline(sagemaker, one_step_definition(queue_url), f"ids-{uuid.uuid4().hex[:8]}")
    response = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))
    return response["PipelineExecutionArn"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_describe_and_steps_take_an_execution_id(
    server: ThreadedEmulatorServer,
    sagemaker: SageMakerClient,
    queue_url_here: str,
    sqs_client: SQSClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = start(sagemaker, queue_url_here)
    start(sagemaker, queue_url_here)  # another pipeline's execution, with another id
    receive_messages(sqs_client, queue_url_here, 2)
    server.wait_idle()  # both steps Executing: the listings below do not change between calls
    execution_id = arn.rsplit("/", 1)[1]

    assert run(capsys, "describe", execution_id) == run(capsys, "describe", arn)
    assert run(capsys, "steps", execution_id) == run(capsys, "steps", arn)
    code, out, err = run(capsys, "describe", execution_id)
    assert (code, err) == (0, "")
    assert f"Execution       {arn}" in out.splitlines()


def test_an_id_no_execution_has_is_one_line_and_exit_3(
    sagemaker: SageMakerClient, queue_url_here: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start(sagemaker, queue_url_here)

    code, out, err = run(capsys, "steps", "zzzzzzzzzzzz")

    assert (code, out) == (ExitCode.NOT_FOUND, "")
    assert err == "callback-worker: no pipeline execution has the id 'zzzzzzzzzzzz' in this account and region\n"


def test_an_id_two_pipelines_share_is_one_line_and_exit_2(
    sagemaker: SageMakerClient, queue_url_here: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ids are unique within a pipeline only: the emulator (in this process) gives both executions the same one.
    monkeypatch.setattr("callback_worker.emulator.engine.new_execution_id", lambda: "sameid000000")
    first, second = start(sagemaker, queue_url_here), start(sagemaker, queue_url_here)
    pipelines = sorted(arn.split(":pipeline/")[1].split("/")[0] for arn in (first, second))

    code, out, err = run(capsys, "describe", "sameid000000")

    assert (code, out) == (ExitCode.USAGE, "")
    assert err == (
        f"callback-worker: execution id 'sameid000000' is ambiguous (pipelines {', '.join(pipelines)}); "
        "give the execution's ARN\n"
    )
