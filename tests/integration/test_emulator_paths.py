"""Execution paths other than plain success: failure, stop, typed outputs, SQS refusing, parameters, DAG shapes."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from callback_worker.emulator import ThreadedEmulatorServer
from tests.emulator_fixtures import (
    ROLE_ARN,
    assert_json_matches,
    callback_step,
    create_pipeline,
    list_steps,
    one_step_definition,
    output_ref,
    pipeline_definition,
    receive_messages,
    start_execution,
    two_step_definition,
    wait_for_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sagemaker.type_defs import OutputParameterTypeDef
    from types_boto3_sqs import SQSClient


def test_a_failed_step_fails_the_execution_and_nothing_after_it_starts(
    sagemaker_client: SageMakerClient,
    sqs_client: SQSClient,
    queue_url: str,
    threaded_emulator: ThreadedEmulatorServer,
) -> None:
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, two_step_definition(queue_url)))
    [message] = receive_messages(sqs_client, queue_url, 1)
    sagemaker_client.send_pipeline_execution_step_failure(
        CallbackToken=message["token"], FailureReason="the model did not converge"
    )

    description = wait_for_status(sagemaker_client, arn, "Failed")
    assert description["FailureReason"] == "Step failure: One or multiple steps failed."
    steps = list_steps(sagemaker_client, arn)
    assert list(steps) == ["A"]
    assert steps["A"]["StepStatus"] == "Failed"
    assert steps["A"]["FailureReason"] == "the model did not converge"
    assert steps["A"]["EndTime"] >= steps["A"]["StartTime"]
    threaded_emulator.wait_idle()
    assert len(threaded_emulator.sent_messages) == 1


def test_stop_sends_stopping_and_ends_stopped(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    fan_out = pipeline_definition(
        [
            callback_step("Left", queue_url, arguments={"side": "left"}),
            callback_step("Right", queue_url, arguments={"side": "right"}),
            callback_step("After", queue_url, depends_on=["Left", "Right"]),
        ]
    )
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, fan_out))
    executing = {message["arguments"]["side"]: message for message in receive_messages(sqs_client, queue_url, 2)}

    sagemaker_client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=str(uuid.uuid4()))
    assert sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == (
        "Stopping"
    )
    stopping = {message["arguments"]["side"]: message for message in receive_messages(sqs_client, queue_url, 2)}
    for side in ("left", "right"):
        assert_json_matches(stopping[side], {**executing[side], "status": "Stopping"})
    assert {step["StepStatus"] for step in list_steps(sagemaker_client, arn).values()} == {"Stopping"}

    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=stopping["left"]["token"])
    assert list_steps(sagemaker_client, arn)["Left"]["StepStatus"] == "Stopped"
    assert sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == (
        "Stopping"
    )
    sagemaker_client.send_pipeline_execution_step_failure(
        CallbackToken=stopping["right"]["token"], FailureReason="stopped by request"
    )
    wait_for_status(sagemaker_client, arn, "Stopped")
    steps = list_steps(sagemaker_client, arn)
    assert {name: step["StepStatus"] for name, step in steps.items()} == {"Left": "Stopped", "Right": "Stopped"}
    with pytest.raises(sagemaker_client.exceptions.ConflictException):
        sagemaker_client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=str(uuid.uuid4()))


def test_stop_is_idempotent_for_its_client_request_token(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(queue_url)))
    [message] = receive_messages(sqs_client, queue_url, 1)
    stop_token = str(uuid.uuid4())
    sagemaker_client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=stop_token)
    receive_messages(sqs_client, queue_url, 1)
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=message["token"])
    wait_for_status(sagemaker_client, arn, "Stopped")
    again = sagemaker_client.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=stop_token)
    assert again["PipelineExecutionArn"] == arn


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "'abc' is not a valid Integer"),
        ("4.5", "'4.5' is not a valid Integer"),
        ("", "'' is not a valid Integer"),
    ],
)
def test_an_output_of_the_wrong_type_fails_the_step(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str, value: str, fragment: str
) -> None:
    definition = one_step_definition(queue_url, outputs={"rows": "Integer"})
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, definition))
    [message] = receive_messages(sqs_client, queue_url, 1)
    response = sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=message["token"], OutputParameters=[{"Name": "rows", "Value": value}]
    )
    assert response["PipelineExecutionArn"] == arn
    description = wait_for_status(sagemaker_client, arn, "Failed")
    step = list_steps(sagemaker_client, arn)["A"]
    assert step["StepStatus"] == "Failed"
    assert "'rows'" in step["FailureReason"]
    assert fragment in step["FailureReason"]
    assert description["FailureReason"] == "Step failure: One or multiple steps failed."


def test_a_declared_output_left_out_succeeds_the_step_and_fails_the_condition_reading_it(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    a = callback_step("A", queue_url, outputs={"rows": "Integer", "approved": "Boolean"})
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": output_ref("A", "approved"), "RightValue": True}],
            "IfSteps": [],
            "ElseSteps": [],
        },
    }
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, pipeline_definition([a, gate])))
    [message] = receive_messages(sqs_client, queue_url, 1)
    sent: list[OutputParameterTypeDef] = [{"Name": "rows", "Value": "10"}, {"Name": "extra", "Value": "x"}]
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=message["token"], OutputParameters=sent)
    wait_for_status(sagemaker_client, arn, "Failed")
    steps = list_steps(sagemaker_client, arn)
    assert steps["A"]["StepStatus"] == "Succeeded"
    assert steps["A"]["Metadata"]["Callback"]["OutputParameters"] == sent
    assert steps["Gate"]["StepStatus"] == "Failed"
    assert "'approved'" in steps["Gate"]["FailureReason"]


def test_typed_values_accept_every_declared_type(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    a = callback_step("A", queue_url, outputs={"i": "Integer", "f": "Float", "b": "Boolean", "s": "String"})
    b = callback_step("B", queue_url, arguments={name: output_ref("A", name) for name in ("i", "f", "b", "s")})
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, pipeline_definition([a, b])))
    [first] = receive_messages(sqs_client, queue_url, 1)
    outputs = {"i": "-12", "f": "1e3", "b": "FALSE", "s": " spaced "}
    sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=first["token"], OutputParameters=[{"Name": k, "Value": v} for k, v in outputs.items()]
    )
    [second] = receive_messages(sqs_client, queue_url, 1)
    assert_json_matches(second["arguments"], {"i": -12, "f": 1000.0, "b": False, "s": " spaced "})
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=second["token"])
    wait_for_status(sagemaker_client, arn, "Succeeded")


def test_a_queue_that_refuses_the_message_fails_the_step(
    sagemaker_client: SageMakerClient, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    missing_queue = f"{moto_server}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}"
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(missing_queue)))
    description = wait_for_status(sagemaker_client, arn, "Failed")
    step = list_steps(sagemaker_client, arn)["A"]
    assert step["FailureReason"].startswith(f"Failed to send the callback message to the SQS queue {missing_queue}")
    assert description["FailureReason"] == "Step failure: One or multiple steps failed."
    assert threaded_emulator.sent_messages == []
    [(refused, error)] = threaded_emulator.send_failures
    assert refused.queue_url == missing_queue
    assert "NonExistentQueue" in error or "QueueDoesNotExist" in error


def test_pipeline_parameters_override_defaults_with_their_types(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    parameters: list[dict[str, Any]] = [
        {"Name": "Text", "Type": "String", "DefaultValue": "plain"},
        {"Name": "Count", "Type": "Integer", "DefaultValue": 1},
        {"Name": "Ratio", "Type": "Float", "DefaultValue": 0.5},
        {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
        {"Name": "Mode", "Type": "String", "DefaultValue": "fast", "EnumValues": ["fast", "slow"]},
    ]
    step = callback_step("A", queue_url, arguments={p["Name"]: {"Get": f"Parameters.{p['Name']}"} for p in parameters})
    pipeline = create_pipeline(sagemaker_client, pipeline_definition([step], parameters=parameters))

    start_execution(sagemaker_client, pipeline)
    [defaults] = receive_messages(sqs_client, queue_url, 1)
    assert_json_matches(
        defaults["arguments"], {"Text": "plain", "Count": 1, "Ratio": 0.5, "Flag": False, "Mode": "fast"}
    )
    arn = start_execution(
        sagemaker_client, pipeline, {"Text": "42", "Count": "7", "Ratio": "2", "Flag": "true", "Mode": "slow"}
    )
    [overridden] = receive_messages(sqs_client, queue_url, 1)
    assert_json_matches(overridden["arguments"], {"Text": "42", "Count": 7, "Ratio": 2.0, "Flag": True, "Mode": "slow"})
    listed = sagemaker_client.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    assert listed["PipelineParameters"] == [
        {"Name": "Text", "Value": "42"},
        {"Name": "Count", "Value": "7"},
        {"Name": "Ratio", "Value": "2.0"},
        {"Name": "Flag", "Value": "true"},
        {"Name": "Mode", "Value": "slow"},
    ]


def test_what_the_sagemaker_sdk_generates_is_accepted_and_resolved(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    # Shaped like Pipeline.definition() of the SageMaker Python SDK for two CallbackSteps, a ParameterString,
    # Join, ExecutionVariables, CacheConfig and the SDK's default PipelineExperimentConfig.
    definition = {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [{"Name": "InputData", "Type": "String", "DefaultValue": "s3://bucket/abalone.csv"}],
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": [
            {
                "Name": "Prepare",
                "Type": "Callback",
                "Arguments": {
                    "inputData": {"Get": "Parameters.InputData"},
                    "output": {
                        "Std:Join": {
                            "On": "/",
                            "Values": [
                                "s3://bucket",
                                {"Get": "Execution.PipelineName"},
                                {"Get": "Execution.PipelineExecutionId"},
                            ],
                        }
                    },
                    "executionArn": {"Get": "Execution.PipelineExecutionArn"},
                    "started": {"Get": "Execution.StartDateTime"},
                    "experiment": {"Get": "PipelineExperimentConfig.ExperimentName"},
                },
                "DisplayName": "Prepare-data",
                "Description": "Waits for an external job",
                "CacheConfig": {"Enabled": True, "ExpireAfter": "PT1H"},
                "SqsQueueUrl": queue_url,
                "OutputParameters": [{"OutputName": "rows", "OutputType": "Integer"}],
            },
            {
                "Name": "Train",
                "Type": "Callback",
                "Arguments": {"rows": {"Get": "Steps.Prepare.OutputParameters['rows']"}},
                "DependsOn": ["Prepare"],
                "SqsQueueUrl": queue_url,
                "OutputParameters": [],
            },
        ],
    }
    name = create_pipeline(sagemaker_client, json.dumps(definition))
    arn = start_execution(sagemaker_client, name)
    execution_id = arn.rsplit("/", 1)[1]
    [message] = receive_messages(sqs_client, queue_url, 1)
    arguments = message["arguments"]
    assert arguments["inputData"] == "s3://bucket/abalone.csv"
    assert arguments["output"] == f"s3://bucket/{name}/{execution_id}"
    assert arguments["executionArn"] == arn
    assert arguments["experiment"] == name
    assert arguments["started"].endswith("Z")
    step = list_steps(sagemaker_client, arn)["Prepare"]
    assert step["StepDisplayName"] == "Prepare-data"
    assert step["StepDescription"] == "Waits for an external job"
    assert sagemaker_client.describe_pipeline(PipelineName=name)["PipelineDefinition"] == json.dumps(definition)


def test_experiment_config_can_be_turned_off_or_set(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    off = create_pipeline(sagemaker_client, pipeline_definition([callback_step("A", queue_url)], experiment=None))
    arn = start_execution(sagemaker_client, off)
    assert "PipelineExperimentConfig" not in sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arn)
    named = pipeline_definition(
        [callback_step("A", queue_url)],
        parameters=[{"Name": "Experiment", "Type": "String", "DefaultValue": "exp-1"}],
        experiment={"ExperimentName": {"Get": "Parameters.Experiment"}, "TrialName": "trial-1"},
    )
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, named))
    config = sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExperimentConfig"]
    assert config == {"ExperimentName": "exp-1", "TrialName": "trial-1"}
    receive_messages(sqs_client, queue_url, 2)


def test_independent_steps_run_in_parallel_up_to_the_parallelism_limit(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    steps = [callback_step(f"S{index}", queue_url, arguments={"index": index}) for index in range(3)]
    name = f"parallel-{uuid.uuid4().hex[:8]}"
    sagemaker_client.create_pipeline(
        PipelineName=name,
        PipelineDefinition=pipeline_definition(steps),
        RoleArn=ROLE_ARN,
        ClientRequestToken=str(uuid.uuid4()),
        ParallelismConfiguration={"MaxParallelExecutionSteps": 2},
    )
    arn = start_execution(sagemaker_client, name)
    first_two = receive_messages(sqs_client, queue_url, 2)
    assert len(list_steps(sagemaker_client, arn)) == 2
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=first_two[0]["token"])
    [third] = receive_messages(sqs_client, queue_url, 1)
    for message in (first_two[1], third):
        sagemaker_client.send_pipeline_execution_step_success(CallbackToken=message["token"])
    description = wait_for_status(sagemaker_client, arn, "Succeeded")
    assert description["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 2}
    assert sorted(message["arguments"]["index"] for message in [*first_two, third]) == [0, 1, 2]


def test_running_executions_are_limited(
    emulator_factory: Callable[..., ThreadedEmulatorServer], sqs_client: SQSClient, queue_url: str
) -> None:
    server = emulator_factory(max_running_executions=1)
    client = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    try:
        pipeline = create_pipeline(client, one_step_definition(queue_url))
        first = start_execution(client, pipeline)
        with pytest.raises(client.exceptions.ResourceLimitExceeded):
            start_execution(client, pipeline)
        [message] = receive_messages(sqs_client, queue_url, 1)
        client.send_pipeline_execution_step_success(CallbackToken=message["token"])
        wait_for_status(client, first, "Succeeded")
        start_execution(client, pipeline)
    finally:
        client.close()


def test_pipelines_and_executions_are_listed_described_and_deleted(
    sagemaker_client: SageMakerClient, queue_url: str
) -> None:
    prefix = f"listed-{uuid.uuid4().hex[:6]}"
    names = [create_pipeline(sagemaker_client, one_step_definition(queue_url), f"{prefix}-{n}") for n in range(3)]
    listed = sagemaker_client.list_pipelines(PipelineNamePrefix=prefix, SortBy="Name", SortOrder="Ascending")
    assert [summary["PipelineName"] for summary in listed["PipelineSummaries"]] == names
    paged = sagemaker_client.get_paginator("list_pipelines").paginate(
        PipelineNamePrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    assert [len(page["PipelineSummaries"]) for page in paged] == [2, 1]

    described = sagemaker_client.describe_pipeline(PipelineName=names[0])
    assert described["PipelineArn"] == f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{names[0]}"
    assert described["PipelineStatus"] == "Active"
    assert described["RoleArn"] == ROLE_ARN
    assert sagemaker_client.describe_pipeline(PipelineName=described["PipelineArn"])["PipelineName"] == names[0]

    arns = [start_execution(sagemaker_client, names[0], {}) for _ in range(3)]
    executions = sagemaker_client.list_pipeline_executions(PipelineName=names[0])["PipelineExecutionSummaries"]
    assert [summary["PipelineExecutionArn"] for summary in executions] == arns[::-1]
    assert {summary["PipelineExecutionStatus"] for summary in executions} == {"Executing"}
    assert "LastRunTime" in sagemaker_client.describe_pipeline(PipelineName=names[0])

    token = str(uuid.uuid4())
    deleted = sagemaker_client.delete_pipeline(PipelineName=names[0], ClientRequestToken=token)
    assert deleted["PipelineArn"] == described["PipelineArn"]
    replayed = sagemaker_client.delete_pipeline(PipelineName=names[0], ClientRequestToken=token)
    assert replayed["PipelineArn"] == deleted["PipelineArn"]
    with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
        sagemaker_client.delete_pipeline(PipelineName=names[0], ClientRequestToken=str(uuid.uuid4()))
    with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
        sagemaker_client.describe_pipeline(PipelineName=names[0])
    assert sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=arns[0])["PipelineExecutionStatus"] == (
        "Executing"
    )


def test_start_is_idempotent_for_its_client_request_token(sagemaker_client: SageMakerClient, queue_url: str) -> None:
    pipeline = create_pipeline(sagemaker_client, one_step_definition(queue_url))
    token = str(uuid.uuid4())
    first = sagemaker_client.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=token)
    again = sagemaker_client.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=token)
    assert again["PipelineExecutionArn"] == first["PipelineExecutionArn"]
    listed = sagemaker_client.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
    assert len(listed) == 1


def test_create_is_idempotent_for_its_client_request_token(sagemaker_client: SageMakerClient, queue_url: str) -> None:
    token = str(uuid.uuid4())
    arguments = {
        "PipelineName": f"same-{uuid.uuid4().hex[:6]}",
        "PipelineDefinition": one_step_definition(queue_url),
        "RoleArn": ROLE_ARN,
    }
    first = sagemaker_client.create_pipeline(**arguments, ClientRequestToken=token)  # type: ignore[arg-type]
    again = sagemaker_client.create_pipeline(**arguments, ClientRequestToken=token)  # type: ignore[arg-type]
    assert again["PipelineArn"] == first["PipelineArn"]
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_pipeline(**arguments, ClientRequestToken=str(uuid.uuid4()))  # type: ignore[arg-type]
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "already exists" in raised.value.response["Error"]["Message"]
