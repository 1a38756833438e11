"""The opt-in SDK v3 tier: a user's SageMaker Python SDK v3 pipeline code (sagemaker 3.x, sagemaker-mlops) against
the emulator, unchanged, as it would run against AWS.

Skipped unless ``EMULATOR_SDK_V3=1`` and SDK v3 is importable: ``make sdk-v3-test`` makes its own environment
(build/sdk-v3-venv, about 1.2 GB) with sagemaker 3.x, because the default one has v2 (tests/integration/
test_emulator_sdk.py). The pipelines are those of tests/sdk_v3_pipelines.py, driven through ``Pipeline.upsert/
start``, ``PipelineExecution.describe/list_steps/stop/wait``; callbacks are answered from their SQS messages with
boto3, as a worker would. The SDK's role check is off (``SAGEMAKER_VALIDATE_ROLE=false``) except where a test
says otherwise, and a test fails if the SDK tries to send telemetry. ``EMULATOR_SDK_V3_REGENERATE=1`` writes
the fixtures of tests/fixtures/sdk_v3/ again instead of comparing them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

if os.environ.get("EMULATOR_SDK_V3") != "1":
    pytest.skip("the SDK v3 tier is opt-in: make sdk-v3-test (EMULATOR_SDK_V3=1)", allow_module_level=True)
# Importing SDK v3 builds clients: it must find a region (never real AWS: the session's fixtures set endpoints).
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
pytest.importorskip("sagemaker.mlops.workflow.pipeline", reason="SDK v3 (sagemaker 3.x) is not installed")

from sagemaker.core.telemetry import telemetry_logging  # type: ignore[import-not-found, unused-ignore]
from sagemaker.core.workflow.pipeline_context import PipelineSession  # type: ignore[import-not-found, unused-ignore]
from sagemaker.mlops.workflow.callback_step import CallbackStep  # type: ignore[import-not-found, unused-ignore]
from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-not-found, unused-ignore]
from sagemaker.mlops.workflow.selective_execution_config import (  # type: ignore[import-not-found, unused-ignore]
    SelectiveExecutionConfig,
)

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.emulator.stubs import StubConfig
from tests.emulator_fixtures import ROLE_ARN, receive_messages, wait_for_status
from tests.sdk_v3_pipelines import (
    BUCKET,
    FIXTURES,
    MLFLOW_ARN,
    NO_TELEMETRY,
    approval_gate,
    definitions,
    for_each,
    offline_session,
    stubbed_training,
    write,
)

MODEL_URI = "s3://sdk-pipelines/model/model.tar.gz"
FAILED = "Step failure: One or multiple steps failed."

pytestmark = [
    pytest.mark.filterwarnings("ignore:Running within a PipelineSession:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
]


@pytest.fixture(autouse=True)
def _no_telemetry_no_role_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, timeout: object) -> None:
        raise AssertionError(f"the SDK tried to send telemetry to {url}")

    monkeypatch.setattr(telemetry_logging, "_requests_helper", refuse)
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")


@pytest.fixture
def sdk(
    emulator_factory: Callable[..., ThreadedEmulatorServer], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A PipelineSession whose SageMaker client talks to a stubbing emulator, and S3 to moto."""
    values = {"Train": {"ModelArtifacts.S3ModelArtifacts": MODEL_URI}}
    server = emulator_factory(stubs=StubConfig(enabled=True, delay=0.2, values=values))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    boto_session = boto3.Session(region_name="us-east-1")
    client = boto_session.client("sagemaker", endpoint_url=server.endpoint_url)
    boto3.client("s3").create_bucket(Bucket=BUCKET) if BUCKET not in _buckets() else None
    yield PipelineSession(
        boto_session=boto_session, sagemaker_client=client, default_bucket=BUCKET, sagemaker_config=NO_TELEMETRY
    )
    client.close()


def _buckets() -> set[str]:
    return {bucket["Name"] for bucket in boto3.client("s3").list_buckets().get("Buckets", [])}


def answer(session: Any, token: str, **outputs: str) -> None:
    session.sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=[{"Name": key, "Value": value} for key, value in outputs.items()]
    )


def steps_by_name(execution: Any) -> dict[str, dict[str, Any]]:
    return {step["StepName"]: step for step in execution.list_steps()}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_the_committed_fixtures_are_what_the_sdk_writes_today() -> None:
    written = definitions(offline_session())
    if os.environ.get("EMULATOR_SDK_V3_REGENERATE") == "1":
        write(FIXTURES, written)
    committed = {path.stem: json.loads(path.read_text()) for path in FIXTURES.glob("*.json")}
    assert committed == written


@pytest.mark.parametrize("approved", [True, False])
def test_the_approval_gate_runs_the_branch_the_callback_chose(
    sdk: Any, sqs_client: Any, queue_url: str, approved: bool
) -> None:
    pipeline = approval_gate(queue_url, sdk, unique("gate"))
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start(parameters={"Threshold": 5})
    (message,) = receive_messages(sqs_client, queue_url, 1)
    run_id = execution.arn.rsplit("/", 1)[1]
    assert message["arguments"] == {"handler": "approval", "model": "m-1", "threshold": 5, "run": run_id}
    answer(sdk, message["token"], approved=str(approved).lower(), reason="metrics below target")
    if approved:
        (deploy,) = receive_messages(sqs_client, queue_url, 1)
        answer(sdk, deploy["token"])
        execution.wait(delay=1, max_attempts=20)
    description = wait_for_status(sdk.sagemaker_client, execution.arn, "Succeeded" if approved else "Failed")
    steps = steps_by_name(execution)
    assert steps["Gate"]["Metadata"] == {"Condition": {"Outcome": "True" if approved else "False"}}
    assert ("Reject" if approved else "Deploy") not in steps
    if not approved:
        assert description["FailureReason"] == FAILED
        assert steps["Reject"]["FailureReason"] == "Rejected: metrics below target"


def test_a_second_upsert_makes_a_new_version_and_mlflow_config_is_reported(
    sdk: Any, sqs_client: Any, queue_url: str
) -> None:
    name = unique("upsert")
    first = approval_gate(queue_url, sdk, name)
    first.upsert(role_arn=ROLE_ARN)
    running = first.start()
    second = approval_gate(queue_url, sdk, name, mlflow=True)
    response = second.upsert(role_arn=ROLE_ARN, description="with MLflow")
    assert response["PipelineVersionId"] == 2
    assert running.describe()["PipelineVersionId"] == 1
    assert "MLflowConfig" not in running.describe()
    newer = second.start(mlflow_experiment_name="reruns")
    assert newer.describe()["MLflowConfig"] == {"MlflowResourceArn": MLFLOW_ARN, "MlflowExperimentName": "reruns"}
    receive_messages(sqs_client, queue_url, 2)


def test_retry_re_runs_a_failed_callback_step_and_stop_stops_one(sdk: Any, sqs_client: Any, queue_url: str) -> None:
    pipeline = approval_gate(queue_url, sdk, unique("retry"))
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start()
    client = sdk.sagemaker_client
    (first,) = receive_messages(sqs_client, queue_url, 1)
    client.send_pipeline_execution_step_failure(CallbackToken=first["token"], FailureReason="reviewer unavailable")
    assert wait_for_status(client, execution.arn, "Failed")["FailureReason"] == FAILED
    assert steps_by_name(execution)["Approval"]["FailureReason"] == "reviewer unavailable"
    client.retry_pipeline_execution(PipelineExecutionArn=execution.arn, ClientRequestToken=str(uuid.uuid4()))
    (second,) = receive_messages(sqs_client, queue_url, 1)
    assert second["token"] != first["token"]
    execution.stop()
    (stopping,) = receive_messages(sqs_client, queue_url, 1)
    assert (stopping["token"], stopping["status"]) == (second["token"], "Stopping")
    answer(sdk, stopping["token"], approved="false", reason="stopped")
    wait_for_status(client, execution.arn, "Stopped")
    assert steps_by_name(execution)["Approval"]["AttemptCount"] == 2


def test_a_stubbed_training_step_runs_between_two_callback_steps(sdk: Any, sqs_client: Any, queue_url: str) -> None:
    pipeline = stubbed_training(queue_url, sdk, unique("train"))
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start()
    (prepare,) = receive_messages(sqs_client, queue_url, 1)
    answer(sdk, prepare["token"], train_uri=f"s3://{BUCKET}/train.csv")
    (register,) = receive_messages(sqs_client, queue_url, 1)
    job = register["arguments"]["job"]
    assert register["arguments"] == {"handler": "register", "model": MODEL_URI, "job": job}
    steps = steps_by_name(execution)
    assert steps["Train"]["Metadata"]["TrainingJob"]["Arn"].endswith(f":training-job/{job}")
    assert steps["Prepare"]["EndTime"] <= steps["Train"]["StartTime"] < steps["Train"]["EndTime"]
    answer(sdk, register["token"])
    execution.wait(delay=1, max_attempts=20)
    selective = SelectiveExecutionConfig(
        selected_steps=["Train", "Register"], source_pipeline_execution_arn=execution.arn
    )
    again = pipeline.start(selective_execution_config=selective)
    (rerun,) = receive_messages(sqs_client, queue_url, 1)
    assert rerun["arguments"]["model"] == MODEL_URI
    assert steps_by_name(again)["Prepare"]["SelectiveExecutionResult"] == {"SourcePipelineExecutionArn": execution.arn}


def test_a_for_each_step_fans_out_and_reports_its_children(sdk: Any, sqs_client: Any, queue_url: str) -> None:
    pipeline = for_each(queue_url, sdk, unique("fan"))
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start(parameters={"Items": '["x", "y"]'})
    messages = receive_messages(sqs_client, queue_url, 2)
    for message in messages:
        answer(sdk, message["token"], score="0.5" if message["arguments"]["item"] == "x" else "0.8")
    (summary,) = receive_messages(sqs_client, queue_url, 1)
    assert summary["arguments"] == {"handler": "summarize", "succeeded": 2, "first": 0.5, "best": 0.8}
    answer(sdk, summary["token"])
    execution.wait(delay=1, max_attempts=20)
    steps = steps_by_name(execution)
    assert steps["Score-1"]["IterationContext"] == {"ParentStepName": "Fan", "Index": 1, "Item": "y"}
    assert steps["Fan"]["Metadata"]["ForEach"]["Selector"] == {"StepName": "Score", "Index": 1}


def test_a_definition_over_100_kb_goes_through_s3(sdk: Any, sqs_client: Any, queue_url: str) -> None:
    notes = "x" * 110_000
    big = CallbackStep(name="Big", sqs_queue_url=queue_url, inputs={"notes": notes}, outputs=[])
    pipeline = Pipeline(name=unique("big"), steps=[big], sagemaker_session=sdk)
    pipeline.upsert(role_arn=ROLE_ARN)
    stored = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=pipeline.name)
    assert stored["KeyCount"] == 1  # the SDK switched to PipelineDefinitionS3Location by itself
    assert json.loads(pipeline.describe()["PipelineDefinition"])["Steps"][0]["Arguments"]["notes"] == notes
    pipeline.start()
    (message,) = receive_messages(sqs_client, queue_url, 1)
    assert message["arguments"]["notes"] == notes


def test_the_sdks_role_check_can_run_against_iam_and_sts_on_moto(
    sdk: Any, moto_server: str, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGEMAKER_VALIDATE_ROLE")
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server)
    name = f"role-{uuid.uuid4().hex[:8]}"
    role_arn = f"arn:aws:iam::123456789012:role/{name}"
    pipeline = approval_gate(queue_url, sdk, unique("checked"))
    with pytest.raises(Exception, match=name):  # the check runs: a role IAM does not know is refused
        pipeline.upsert(role_arn=role_arn)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    assert pipeline.upsert(role_arn=role_arn)["PipelineArn"].endswith(pipeline.name.lower())
