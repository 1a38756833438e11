"""Definitions the SageMaker Python SDK v3 wrote (tests/fixtures/sdk_v3/, by tests/sdk_v3_pipelines.py), run
through the emulator over HTTP with boto3, as the SDK's ``upsert``/``start`` would send them.

Every one of them carries the top-level ``MlflowConfig`` key that v3 always writes. The SDK itself drives the
same pipelines in the opt-in tier (tests/integration/test_emulator_sdk_v3.py, ``make sdk-v3-test``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.emulator.stubs import StubConfig
from tests.emulator_fixtures import ROLE_ARN, list_steps, receive_messages, wait_for_status
from tests.sdk_v3_pipelines import FIXTURE_QUEUE_URL, FIXTURES, MLFLOW_ARN

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

MODEL_URI = "s3://sdk-pipelines/model/model.tar.gz"
FAILED = "Step failure: One or multiple steps failed."


@pytest.fixture
def client(emulator_factory: Callable[..., ThreadedEmulatorServer]) -> SageMakerClient:
    """A boto3 SageMaker client on an emulator running stubs (0.05 s), with the model artifact's stub value."""
    values = {"Train": {"ModelArtifacts.S3ModelArtifacts": MODEL_URI}}
    server = emulator_factory(stubs=StubConfig(enabled=True, delay=0.05, values=values))
    sagemaker: SageMakerClient = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    return sagemaker


def upsert(client: SageMakerClient, fixture: str, queue_url: str) -> str:
    """Create a pipeline from a committed definition, its queue swapped for ``queue_url``; returns its name."""
    text = (FIXTURES / f"{fixture}.json").read_text().replace(FIXTURE_QUEUE_URL, queue_url)
    name = f"{fixture.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    client.create_pipeline(
        PipelineName=name, PipelineDefinition=text, RoleArn=ROLE_ARN, ClientRequestToken=str(uuid.uuid4())
    )
    return name


def start(client: SageMakerClient, name: str, **params: Any) -> str:
    return client.start_pipeline_execution(PipelineName=name, ClientRequestToken=str(uuid.uuid4()), **params)[
        "PipelineExecutionArn"
    ]


def answer(client: SageMakerClient, token: str, **outputs: str) -> None:
    client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=[{"Name": key, "Value": value} for key, value in outputs.items()]
    )


def test_every_fixture_carries_the_mlflow_config_key_v3_writes() -> None:
    written = {path.stem: json.loads(path.read_text()) for path in FIXTURES.glob("*.json")}
    assert sorted(written) == ["approval_gate", "approval_gate_mlflow", "for_each", "stubbed_training"]
    assert all("MlflowConfig" in definition for definition in written.values())
    assert written["approval_gate"]["MlflowConfig"] is None


@pytest.mark.parametrize("approved", [True, False])
def test_the_v3_approval_gate_runs_the_branch_the_callback_chose(
    client: SageMakerClient, sqs_client: SQSClient, queue_url: str, approved: bool
) -> None:
    arn = start(
        client, upsert(client, "approval_gate", queue_url), PipelineParameters=[{"Name": "Threshold", "Value": "5"}]
    )
    (message,) = receive_messages(sqs_client, queue_url, 1)
    assert message["arguments"] == {"handler": "approval", "model": "m-1", "threshold": 5, "run": arn.rsplit("/", 1)[1]}
    answer(client, message["token"], approved=str(approved).lower(), reason="metrics below target")
    if approved:
        (deploy,) = receive_messages(sqs_client, queue_url, 1)
        assert deploy["arguments"] == {"handler": "deploy", "model": "m-1"}
        answer(client, deploy["token"])
    description = wait_for_status(client, arn, "Succeeded" if approved else "Failed")
    steps = list_steps(client, arn)
    assert steps["Gate"]["Metadata"] == {"Condition": {"Outcome": "True" if approved else "False"}}
    assert ("Reject" if approved else "Deploy") not in steps
    assert "MLflowConfig" not in description  # MlflowConfig: null
    if not approved:
        assert description["FailureReason"] == FAILED
        assert steps["Reject"]["FailureReason"] == "Rejected: metrics below target"
        assert steps["Reject"]["Metadata"] == {"Fail": {"ErrorMessage": "Rejected: metrics below target"}}


def test_the_mlflow_config_is_reported_on_each_execution(
    client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    name = upsert(client, "approval_gate_mlflow", queue_url)
    first = client.describe_pipeline_execution(PipelineExecutionArn=start(client, name))
    assert first["MLflowConfig"] == {"MlflowResourceArn": MLFLOW_ARN, "MlflowExperimentName": "approvals"}
    other = start(client, name, MlflowExperimentName="reruns")
    assert (
        client.describe_pipeline_execution(PipelineExecutionArn=other)["MLflowConfig"]["MlflowExperimentName"]
        == "reruns"
    )
    receive_messages(sqs_client, queue_url, 2)


def test_the_v3_for_each_scores_every_item_two_at_a_time(
    client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    arn = start(client, upsert(client, "for_each", queue_url))
    first = receive_messages(sqs_client, queue_url, 2)
    assert sorted(message["arguments"]["item"] for message in first) == ["a", "b"]
    assert list(list_steps(client, arn)) == ["Score-1", "Score-0", "Fan"]  # newest first; never more than two
    scores = {"a": "0.4", "b": "0.9", "c": "0.7"}
    for message in first:
        answer(client, message["token"], score=scores[message["arguments"]["item"]])
    (third,) = receive_messages(sqs_client, queue_url, 1)
    assert third["arguments"] == {"handler": "score", "item": "c"}
    answer(client, third["token"], score="0.7")
    (summary,) = receive_messages(sqs_client, queue_url, 1)
    assert summary["arguments"] == {"handler": "summarize", "succeeded": 3, "first": 0.4, "best": 0.9}
    answer(client, summary["token"])
    wait_for_status(client, arn, "Succeeded")
    steps = list_steps(client, arn)
    assert steps["Score-2"]["IterationContext"] == {"ParentStepName": "Fan", "Index": 2, "Item": "c"}
    assert steps["Fan"]["Metadata"]["ForEach"] == {
        "Status": "Succeeded",
        "InputItemCount": 3,
        "TotalStepCount": 3,
        "SucceededStepCount": 3,
        "FailedStepCount": 0,
        "StoppedStepCount": 0,
        "Selector": {"StepName": "Score", "Index": 1},
    }


def test_a_v3_training_step_runs_as_a_stub_between_two_callbacks(
    client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    arn = start(client, upsert(client, "stubbed_training", queue_url))
    (prepare,) = receive_messages(sqs_client, queue_url, 1)
    answer(client, prepare["token"], train_uri="s3://sdk-pipelines/train.csv")
    (register,) = receive_messages(sqs_client, queue_url, 1)
    train = list_steps(client, arn)["Train"]
    job = register["arguments"]["job"]  # TrainingJobName: no stub value needed
    assert register["arguments"] == {"handler": "register", "model": MODEL_URI, "job": job}
    assert train["Metadata"]["TrainingJob"]["Arn"].endswith(f":training-job/{job}")
    assert train["StepStatus"] == "Succeeded"
    answer(client, register["token"])
    wait_for_status(client, arn, "Succeeded")
