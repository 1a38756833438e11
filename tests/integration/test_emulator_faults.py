"""Fault injection as a client sees it: throttling and 500s at the configured rates, botocore's retries, latency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from callback_worker.emulator import FaultConfig, OperationFaults, ThreadedEmulatorServer
from tests.emulator_fixtures import (
    create_pipeline,
    list_steps,
    one_step_definition,
    receive_messages,
    start_execution,
    wait_for_status,
)

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

Factory = Callable[..., ThreadedEmulatorServer]
NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def client_for() -> Iterator[Callable[[ThreadedEmulatorServer, Config], SageMakerClient]]:
    """Build boto3 SageMaker clients on a given emulator with a given retry config; closes them afterwards."""
    clients: list[SageMakerClient] = []

    def build(server: ThreadedEmulatorServer, config: Config) -> SageMakerClient:
        client = boto3.client("sagemaker", endpoint_url=server.endpoint_url, config=config)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def error_codes(call: Callable[[], object], times: int) -> list[tuple[str, int]]:
    """``(code, HTTP status)`` of every failed call among ``times`` calls."""
    errors = []
    for _ in range(times):
        try:
            call()
        except ClientError as error:
            errors.append((error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]))
    return errors


def test_throttling_is_injected_at_the_configured_rate(
    emulator_factory: Factory, client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient]
) -> None:
    server = emulator_factory(faults=FaultConfig(seed=11).with_operation("ListPipelines", throttle=0.2))
    client = client_for(server, NO_RETRIES)
    errors = error_codes(client.list_pipelines, 300)
    assert set(errors) == {("ThrottlingException", 400)}
    # Binomial(300, 0.2): mean 60, standard deviation 7; the bound is over four deviations wide.
    assert 30 <= len(errors) <= 90
    assert server.injected("ListPipelines", "throttle") == len(errors)
    assert (
        error_codes(lambda: client.list_pipeline_executions(PipelineName="absent"), 20)
        == [("ResourceNotFound", 400)] * 20
    )


def test_server_errors_are_injected_at_the_configured_rate(
    emulator_factory: Factory, client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient]
) -> None:
    server = emulator_factory(faults=FaultConfig(default=OperationFaults(error=0.1), seed=3))
    client = client_for(server, NO_RETRIES)
    errors = error_codes(client.list_pipelines, 300)
    assert set(errors) == {("InternalFailure", 500)}
    assert 10 <= len(errors) <= 55
    assert server.injected("ListPipelines", "error") == len(errors)


def test_botocore_retries_injected_faults_until_the_call_succeeds(
    emulator_factory: Factory, client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient]
) -> None:
    # Seed 10 throttles one of these four calls and fails another with a 500 (botocore waits up to a second
    # before each retry, so the test keeps the retries few).
    faults = FaultConfig(seed=10).with_operation("DescribePipeline", throttle=0.25, error=0.25)
    server = emulator_factory(faults=faults)
    client = client_for(server, Config(retries={"mode": "standard", "max_attempts": 5}))
    name = create_pipeline(client, one_step_definition("https://sqs.us-east-1.amazonaws.com/123456789012/q"))
    responses = [client.describe_pipeline(PipelineName=name) for _ in range(4)]
    assert {response["PipelineName"] for response in responses} == {name}
    retries = sum(response["ResponseMetadata"]["RetryAttempts"] for response in responses)
    throttled = server.injected("DescribePipeline", "throttle")
    failed = server.injected("DescribePipeline", "error")
    assert throttled > 0
    assert failed > 0
    assert retries == throttled + failed


def test_a_throttled_answer_changed_nothing(
    threaded_emulator: ThreadedEmulatorServer,
    sagemaker_client: SageMakerClient,
    client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient],
    sqs_client: SQSClient,
    queue_url: str,
) -> None:
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(queue_url)))
    [message] = receive_messages(sqs_client, queue_url, 1)
    threaded_emulator.faults = FaultConfig().with_operation("SendPipelineExecutionStepSuccess", throttle=1.0)
    throttled = client_for(threaded_emulator, NO_RETRIES)
    with pytest.raises(ClientError) as raised:
        throttled.send_pipeline_execution_step_success(CallbackToken=message["token"])
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert list_steps(sagemaker_client, arn)["A"]["StepStatus"] == "Executing"

    threaded_emulator.faults = FaultConfig()
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=message["token"])
    wait_for_status(sagemaker_client, arn, "Succeeded")


def test_an_error_after_the_change_leads_to_an_idempotent_replay(
    threaded_emulator: ThreadedEmulatorServer,
    sagemaker_client: SageMakerClient,
    client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient],
    sqs_client: SQSClient,
    queue_url: str,
) -> None:
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(queue_url)))
    [message] = receive_messages(sqs_client, queue_url, 1)
    threaded_emulator.faults = FaultConfig().with_operation("SendPipelineExecutionStepFailure", error_after=1.0)
    request_token = str(uuid.uuid4())
    unlucky = client_for(threaded_emulator, NO_RETRIES)
    with pytest.raises(ClientError) as raised:
        unlucky.send_pipeline_execution_step_failure(
            CallbackToken=message["token"], FailureReason="no luck", ClientRequestToken=request_token
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    wait_for_status(sagemaker_client, arn, "Failed")
    assert list_steps(sagemaker_client, arn)["A"]["FailureReason"] == "no luck"

    threaded_emulator.faults = FaultConfig()
    replay = sagemaker_client.send_pipeline_execution_step_failure(
        CallbackToken=message["token"], FailureReason="no luck", ClientRequestToken=request_token
    )
    assert replay["PipelineExecutionArn"] == arn
    assert threaded_emulator.injected("SendPipelineExecutionStepFailure", "error_after") == 1


def test_latency_and_jitter_delay_only_the_configured_operation(
    emulator_factory: Factory, client_for: Callable[[ThreadedEmulatorServer, Config], SageMakerClient]
) -> None:
    faults = FaultConfig(seed=1).with_operation("ListPipelines", latency=0.1, jitter=0.05)
    client = client_for(emulator_factory(faults=faults), NO_RETRIES)
    delays = []
    for _ in range(4):
        started = time.perf_counter()
        client.list_pipelines()
        delays.append(time.perf_counter() - started)
    assert min(delays) >= 0.1
    assert max(delays) < 0.1 + 0.05 + 0.1
    started = time.perf_counter()
    error_codes(lambda: client.list_pipeline_executions(PipelineName="absent"), 1)
    assert time.perf_counter() - started < 0.1
