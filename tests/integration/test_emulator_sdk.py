"""A user's SageMaker Python SDK (v2) pipeline code against the emulator, as it would run against AWS.

The pipelines are built with the SDK's own classes (CallbackStep, ConditionStep, FailStep, TrainingStep with
an Estimator) and driven through ``Pipeline.upsert/start``, ``_PipelineExecution.describe/list_steps/wait``;
the callback steps are answered from their SQS messages with boto3, as a worker would. The SDK's telemetry is
opted out through its config, and a test fails if it tries to send any.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.emulator.stubs import StubConfig
from tests.emulator_fixtures import ROLE_ARN, receive_messages, wait_for_status

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # the SDK warns on import otherwise

from sagemaker.estimator import Estimator  # imported after the variable above is set
from sagemaker.inputs import TrainingInput
from sagemaker.telemetry import telemetry_logging
from sagemaker.workflow.callback_step import CallbackOutput, CallbackOutputTypeEnum, CallbackStep
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import TrainingStep

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
BUCKET = "sdk-pipelines"
MODEL_URI = "s3://sdk-pipelines/model/model.tar.gz"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, timeout: object) -> None:
        raise AssertionError(f"the SDK tried to send telemetry to {url}")

    monkeypatch.setattr(telemetry_logging, "_requests_helper", refuse)


@pytest.fixture
def stub_emulator(emulator_factory: Callable[..., ThreadedEmulatorServer]) -> ThreadedEmulatorServer:
    """An emulator with stubbed steps on (Training runs 0.2 s) and the model artifact's stub value."""
    values = {"Train": {"ModelArtifacts.S3ModelArtifacts": MODEL_URI}}
    return emulator_factory(stubs=StubConfig(enabled=True, delay=0.2, values=values))


@pytest.fixture
def sdk(
    stub_emulator: ThreadedEmulatorServer, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineSession]:
    """A PipelineSession whose SageMaker client talks to the emulator, and S3 to moto (as the emulator's does)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    boto_session = boto3.Session(region_name="us-east-1")
    client = boto_session.client("sagemaker", endpoint_url=stub_emulator.endpoint_url)
    yield PipelineSession(
        boto_session=boto_session, sagemaker_client=client, default_bucket=BUCKET, sagemaker_config=NO_TELEMETRY
    )
    client.close()


def client_of(session: PipelineSession) -> SageMakerClient:
    client: SageMakerClient = session.sagemaker_client
    return client


def approval_gate(queue_url: str, session: PipelineSession, name: str) -> Pipeline:
    """Approval (callback: approved Boolean, reason String) → Gate: approved == true ? Deploy : Reject (Fail)."""
    approval = CallbackStep(
        name="Approval",
        sqs_queue_url=queue_url,
        inputs={"handler": "approval", "model": ParameterString("Model", default_value="m-1")},
        outputs=[
            CallbackOutput(output_name="approved", output_type=CallbackOutputTypeEnum.Boolean),
            CallbackOutput(output_name="reason", output_type=CallbackOutputTypeEnum.String),
        ],
    )
    deploy = CallbackStep(name="Deploy", sqs_queue_url=queue_url, inputs={"handler": "deploy"}, outputs=[])
    reject = FailStep(
        name="Reject", error_message=Join(on=" ", values=["Rejected:", approval.properties.Outputs["reason"]])
    )
    gate = ConditionStep(
        name="Gate",
        conditions=[ConditionEquals(left=approval.properties.Outputs["approved"], right=True)],
        if_steps=[deploy],
        else_steps=[reject],
    )
    parameters = [ParameterString("Model", default_value="m-1")]
    return Pipeline(name=name, parameters=parameters, steps=[approval, gate], sagemaker_session=session)


def answer(client: SageMakerClient, token: str, **outputs: str) -> None:
    client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=[{"Name": key, "Value": value} for key, value in outputs.items()]
    )


def steps_by_name(execution: Any) -> dict[str, dict[str, Any]]:
    return {step["StepName"]: step for step in execution.list_steps()}


@pytest.mark.parametrize("approved", [True, False])
def test_the_approval_gate_runs_the_branch_the_callback_chose(
    sdk: PipelineSession, sqs_client: SQSClient, queue_url: str, approved: bool
) -> None:
    pipeline = approval_gate(queue_url, sdk, f"gate-{uuid.uuid4().hex[:8]}")
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start()
    (message,) = receive_messages(sqs_client, queue_url, 1)
    assert message["arguments"] == {"handler": "approval", "model": "m-1"}
    answer(client_of(sdk), message["token"], approved=str(approved).lower(), reason="metrics below target")
    if approved:
        (deploy,) = receive_messages(sqs_client, queue_url, 1)
        assert deploy["arguments"] == {"handler": "deploy"}
        answer(client_of(sdk), deploy["token"])
        execution.wait(delay=1, max_attempts=20)
    description = wait_for_status(client_of(sdk), execution.arn, "Succeeded" if approved else "Failed")
    steps = steps_by_name(execution)
    assert steps["Gate"]["StepStatus"] == "Succeeded"
    assert steps["Gate"]["Metadata"] == {"Condition": {"Outcome": "True" if approved else "False"}}
    taken, skipped = ("Deploy", "Reject") if approved else ("Reject", "Deploy")
    assert skipped not in steps  # the branch not taken never starts
    if not approved:
        assert description["FailureReason"] == "Step failure: One or multiple steps failed."
        assert steps[taken]["FailureReason"] == "Rejected: metrics below target"
        assert steps[taken]["StepStatus"] == "Failed"
        assert steps[taken]["Metadata"] == {"Fail": {"ErrorMessage": "Rejected: metrics below target"}}


def test_a_second_upsert_makes_a_new_version_and_keeps_the_running_one(
    sdk: PipelineSession, sqs_client: SQSClient, queue_url: str
) -> None:
    name = f"upsert-{uuid.uuid4().hex[:8]}"
    first = approval_gate(queue_url, sdk, name)
    first.upsert(role_arn=ROLE_ARN, tags=[{"Key": "team", "Value": "ml"}])
    running = first.start()
    receive_messages(sqs_client, queue_url, 1)
    second = approval_gate(queue_url, sdk, name)
    second.parameters = [ParameterString("Model", default_value="m-2")]
    response = second.upsert(role_arn=ROLE_ARN, description="second", tags=[{"Key": "stage", "Value": "dev"}])
    assert response["PipelineVersionId"] == 2
    client = client_of(sdk)
    versions = client.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]
    assert [version["PipelineVersionId"] for version in versions] == [2, 1]
    assert versions[1]["LastExecutionPipelineExecutionArn"] == running.arn
    first_definition = json.loads(second.describe(pipeline_version_id=1)["PipelineDefinition"])
    assert first_definition["Parameters"][0]["DefaultValue"] == "m-1"
    assert second.describe()["PipelineDescription"] == "second"
    kept = client.describe_pipeline_definition_for_execution(PipelineExecutionArn=running.arn)["PipelineDefinition"]
    assert json.loads(kept)["Parameters"][0]["DefaultValue"] == "m-1"
    assert running.describe()["PipelineVersionId"] == 1
    tags = client.list_tags(ResourceArn=response["PipelineArn"])["Tags"]
    assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [("stage", "dev"), ("team", "ml")]
    newer = second.start()
    (message,) = receive_messages(sqs_client, queue_url, 1)
    assert message["arguments"]["model"] == "m-2"
    assert newer.describe()["PipelineVersionId"] == 2
    with pytest.raises(client.exceptions.ResourceNotFound):
        second.start(pipeline_version_id=7)


def test_retry_re_runs_a_failed_callback_step_with_a_new_token(
    sdk: PipelineSession, sqs_client: SQSClient, queue_url: str
) -> None:
    pipeline = approval_gate(queue_url, sdk, f"retry-{uuid.uuid4().hex[:8]}")
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start()
    client = client_of(sdk)
    (first,) = receive_messages(sqs_client, queue_url, 1)
    with pytest.raises(client.exceptions.ConflictException):
        client.retry_pipeline_execution(PipelineExecutionArn=execution.arn, ClientRequestToken=str(uuid.uuid4()))
    client.send_pipeline_execution_step_failure(CallbackToken=first["token"], FailureReason="reviewer unavailable")
    wait_for_status(client, execution.arn, "Failed")
    retry_token = str(uuid.uuid4())
    for _ in range(2):  # the same ClientRequestToken twice retries once
        client.retry_pipeline_execution(PipelineExecutionArn=execution.arn, ClientRequestToken=retry_token)
    (second,) = receive_messages(sqs_client, queue_url, 1)
    assert second["token"] != first["token"]
    assert second["arguments"] == first["arguments"]
    answer(client, second["token"], approved="true", reason="ok")
    (deploy,) = receive_messages(sqs_client, queue_url, 1)
    answer(client, deploy["token"])
    execution.wait(delay=1, max_attempts=20)
    steps = steps_by_name(execution)
    assert steps["Approval"]["AttemptCount"] == 2
    assert steps["Approval"]["Metadata"]["Callback"]["CallbackToken"] == second["token"]
    with pytest.raises(client.exceptions.ConflictException):  # the first attempt's token stays answered
        client.send_pipeline_execution_step_success(CallbackToken=first["token"])


@pytest.mark.filterwarnings("ignore:Running within a PipelineSession:UserWarning")
def test_a_stubbed_training_step_runs_between_two_callback_steps(
    sdk: PipelineSession, sqs_client: SQSClient, queue_url: str
) -> None:
    prepare = CallbackStep(
        name="Prepare",
        sqs_queue_url=queue_url,
        inputs={"handler": "prepare"},
        outputs=[CallbackOutput(output_name="train_uri", output_type=CallbackOutputTypeEnum.String)],
    )
    estimator = Estimator(
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
        role=ROLE_ARN,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{BUCKET}/output",
        sagemaker_session=sdk,
        disable_profiler=True,
        debugger_hook_config=False,
    )
    train = TrainingStep(
        name="Train", step_args=estimator.fit({"train": TrainingInput(s3_data=prepare.properties.Outputs["train_uri"])})
    )
    register = CallbackStep(
        name="Register",
        sqs_queue_url=queue_url,
        inputs={"handler": "register", "model": train.properties.ModelArtifacts.S3ModelArtifacts},
        outputs=[],
    )
    pipeline = Pipeline(name=f"stub-{uuid.uuid4().hex[:8]}", steps=[prepare, train, register], sagemaker_session=sdk)
    pipeline.upsert(role_arn=ROLE_ARN)
    execution = pipeline.start()
    client = client_of(sdk)
    (first,) = receive_messages(sqs_client, queue_url, 1)
    answer(client, first["token"], train_uri=f"s3://{BUCKET}/train.csv")
    (last,) = receive_messages(sqs_client, queue_url, 1)
    assert last["arguments"] == {"handler": "register", "model": MODEL_URI}
    steps = steps_by_name(execution)
    assert steps["Train"]["StepStatus"] == "Succeeded"
    assert steps["Train"]["Metadata"]["TrainingJob"]["Arn"].startswith("arn:aws:sagemaker:us-east-1:")
    assert steps["Prepare"]["EndTime"] <= steps["Train"]["StartTime"] < steps["Train"]["EndTime"]
    answer(client, last["token"])
    execution.wait(delay=1, max_attempts=20)


def test_a_definition_over_100_kb_goes_through_s3(sdk: PipelineSession, sqs_client: SQSClient, queue_url: str) -> None:
    notes = "x" * 110_000
    big = CallbackStep(name="Big", sqs_queue_url=queue_url, inputs={"notes": notes}, outputs=[])
    pipeline = Pipeline(name=f"big-{uuid.uuid4().hex[:8]}", steps=[big], sagemaker_session=sdk)
    pipeline.upsert(role_arn=ROLE_ARN)
    stored = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=pipeline.name)
    assert stored["KeyCount"] == 1  # the SDK switched to PipelineDefinitionS3Location by itself
    assert json.loads(pipeline.describe()["PipelineDefinition"])["Steps"][0]["Arguments"]["notes"] == notes
    pipeline.start()
    (message,) = receive_messages(sqs_client, queue_url, 1)
    assert message["arguments"]["notes"] == notes
