"""Fixtures and helpers that run the SageMaker emulator on 127.0.0.1 beside the session's moto SQS server.

Fixtures:

- ``threaded_emulator``: a started :class:`~emulator.ThreadedEmulatorServer` (no faults), stopped
  afterwards; ``emulator`` is the same fixture under its short name, except in ``tests/integration`` whose
  conftest overrides ``emulator`` with an :class:`~emulator.EmulatorServer` on the test's loop;
- ``emulator_factory``: ``emulator_factory(**options)`` starts another one with :class:`EmulatorServer`
  options (``faults=``, ``max_running_executions=``, ``region=``, ...); all are stopped afterwards;
- ``sagemaker_client``: a plain boto3 SageMaker client on ``threaded_emulator``.

Helpers build callback pipelines as the SageMaker Python SDK writes them, create them, and read the callback
messages off a queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

ROLE_ARN = "arn:aws:iam::123456789012:role/pipeline-role"
DEFAULT_EXPERIMENT: Mapping[str, Any] = {
    "ExperimentName": {"Get": "Execution.PipelineName"},
    "TrialName": {"Get": "Execution.PipelineExecutionId"},
}


@pytest.fixture
def threaded_emulator(moto_server: str) -> Iterator[ThreadedEmulatorServer]:
    """A running emulator in its own thread whose callback messages go to the moto SQS server."""
    with ThreadedEmulatorServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def emulator(threaded_emulator: ThreadedEmulatorServer) -> ThreadedEmulatorServer:
    """``threaded_emulator`` under its short name (``tests/integration`` overrides it with an in-loop one)."""
    return threaded_emulator


@pytest.fixture
def emulator_factory(moto_server: str) -> Iterator[Callable[..., ThreadedEmulatorServer]]:
    """Start emulators with custom options: ``emulator_factory(faults=FaultConfig(...))``."""
    started: list[ThreadedEmulatorServer] = []

    def start(**options: Any) -> ThreadedEmulatorServer:
        server = ThreadedEmulatorServer("127.0.0.1", 0, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sagemaker_client(threaded_emulator: ThreadedEmulatorServer) -> Iterator[SageMakerClient]:
    """A boto3 SageMaker client on ``threaded_emulator``."""
    client = boto3.client("sagemaker", endpoint_url=threaded_emulator.endpoint_url)
    yield client
    client.close()


def callback_step(
    name: str,
    queue_url: str,
    *,
    arguments: Mapping[str, Any] | None = None,
    outputs: Mapping[str, str] | None = None,
    depends_on: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A Callback step as the SDK's ``CallbackStep.to_request()`` writes it; ``outputs`` maps name to type."""
    step: dict[str, Any] = {
        "Name": name,
        "Type": "Callback",
        "Arguments": dict(arguments or {}),
        "SqsQueueUrl": queue_url,
        "OutputParameters": [
            {"OutputName": output, "OutputType": output_type} for output, output_type in (outputs or {}).items()
        ],
    }
    if depends_on:
        step["DependsOn"] = list(depends_on)
    step.update(extra)
    return step


def output_ref(step: str, output: str) -> dict[str, str]:
    """``{"Get": "Steps.<step>.OutputParameters['<output>']"}``."""
    return {"Get": f"Steps.{step}.OutputParameters['{output}']"}


def pipeline_definition(
    steps: Sequence[Mapping[str, Any]],
    *,
    parameters: Sequence[Mapping[str, Any]] = (),
    experiment: Mapping[str, Any] | None = DEFAULT_EXPERIMENT,
) -> str:
    """A definition document as the SDK's ``Pipeline.definition()`` writes it."""
    return json.dumps(
        {
            "Version": "2020-12-01",
            "Metadata": {},
            "Parameters": list(parameters),
            "PipelineExperimentConfig": experiment,
            "Steps": list(steps),
        }
    )


def one_step_definition(
    queue_url: str,
    *,
    arguments: Mapping[str, Any] | None = None,
    outputs: Mapping[str, str] | None = None,
) -> str:
    """One Callback step ``A`` with the given arguments and outputs."""
    return pipeline_definition([callback_step("A", queue_url, arguments=arguments, outputs=outputs)])


def two_step_definition(queue_url: str) -> str:
    """``A`` (outputs ``count`` Integer, ``ratio`` Float, ``ok`` Boolean, ``label`` String) then ``B``.

    ``B`` reads every output of ``A`` through ``Get``, plus a parameter and an execution variable.
    """
    a = callback_step(
        "A",
        queue_url,
        arguments={"size": {"Get": "Parameters.Size"}, "name": "first", "weights": [1, 2.5, True, None]},
        outputs={"count": "Integer", "ratio": "Float", "ok": "Boolean", "label": "String"},
    )
    b = callback_step(
        "B",
        queue_url,
        arguments={
            "count": output_ref("A", "count"),
            "ratio": output_ref("A", "ratio"),
            "ok": output_ref("A", "ok"),
            "label": output_ref("A", "label"),
            "execution": {"Get": "Execution.PipelineExecutionId"},
        },
        outputs={"result": "String"},
    )
    return pipeline_definition([a, b], parameters=[{"Name": "Size", "Type": "Integer", "DefaultValue": 5}])


def create_pipeline(client: SageMakerClient, definition: str, name: str | None = None) -> str:
    """Create a pipeline from ``definition``; returns its name."""
    name = name or f"pipeline-{uuid.uuid4().hex[:10]}"
    client.create_pipeline(
        PipelineName=name,
        PipelineDefinition=definition,
        RoleArn=ROLE_ARN,
        ClientRequestToken=str(uuid.uuid4()),
    )
    return name


def start_execution(client: SageMakerClient, pipeline: str, parameters: Mapping[str, str] | None = None) -> str:
    """Start an execution of ``pipeline`` with ``parameters`` (name to text); returns its ARN."""
    response = client.start_pipeline_execution(
        PipelineName=pipeline,
        PipelineParameters=[{"Name": name, "Value": value} for name, value in (parameters or {}).items()],
        ClientRequestToken=str(uuid.uuid4()),
    )
    return response["PipelineExecutionArn"]


def receive_messages(
    sqs_client: SQSClient, queue_url: str, count: int, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Receive (and delete) exactly ``count`` callback messages; their bodies parsed, in arrival order."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"received {len(bodies)} of {count} messages within {timeout} s: {bodies}")
        response = sqs_client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(10, count - len(bodies)), WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def wait_for_status(
    client: SageMakerClient, execution_arn: str, status: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll ``DescribePipelineExecution`` until the execution has ``status``; returns the description."""
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        if description["PipelineExecutionStatus"] == status:
            return dict(description)
        if time.monotonic() > deadline:
            raise AssertionError(f"execution still {description['PipelineExecutionStatus']}, not {status}")
        time.sleep(0.02)


def list_steps(client: SageMakerClient, execution_arn: str) -> dict[str, dict[str, Any]]:
    """Every step of an execution (all pages), by step name."""
    steps: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=execution_arn):
        for step in page["PipelineExecutionSteps"]:
            steps[step["StepName"]] = dict(step)
    return steps


def assert_json_matches(actual: object, expected: object, path: str = "$") -> None:
    """Assert ``actual`` equals ``expected`` key by key *and* type by type (``1``, ``1.0`` and ``True`` differ)."""
    assert type(actual) is type(expected), f"{path}: {type(actual).__name__} where {type(expected).__name__} expected"
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            assert_json_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list)
        assert len(actual) == len(expected), f"{path}: {len(actual)} items where {len(expected)} expected"
        for index, (item, wanted) in enumerate(zip(actual, expected, strict=True)):
            assert_json_matches(item, wanted, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
