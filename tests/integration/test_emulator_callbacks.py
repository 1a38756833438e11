"""Answering callback tokens through botocore: the service's validation, replays, conflicts and unknown resources."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator_fixtures import (
    create_pipeline,
    list_steps,
    one_step_definition,
    receive_messages,
    start_execution,
    two_step_definition,
    wait_for_status,
)

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sagemaker.type_defs import OutputParameterTypeDef
    from types_boto3_sqs import SQSClient

OTHER_EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/nowhere/execution/abcdefabcdef"


@pytest.fixture
def live_token(sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str) -> tuple[str, str]:
    """The callback token of a step that is Executing, and its execution's ARN."""
    definition = one_step_definition(queue_url, outputs={"n": "Integer"})
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, definition))
    [message] = receive_messages(sqs_client, queue_url, 1)
    return message["token"], arn


def rejected(call: Callable[[], Any]) -> dict[str, Any]:
    """The error botocore raised for ``call`` (which must fail)."""
    with pytest.raises(ClientError) as raised:
        call()
    return dict(raised.value.response["Error"])


SUCCESS_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("token too long", {"CallbackToken": "abcdefghijk"}, "Member must have length less than or equal to 10"),
    ("token pattern", {"CallbackToken": "abc!EFGH12"}, "Member must satisfy regular expression pattern"),
    (
        "51 outputs",
        {"OutputParameters": [{"Name": f"o{i}", "Value": "v"} for i in range(51)]},
        "at 'outputParameters' failed to satisfy constraint: Member must have length less than or equal to 50",
    ),
    (
        "name of 257",
        {"OutputParameters": [{"Name": "n" * 257, "Value": "1"}]},
        "at 'outputParameters.1.member.name' failed to satisfy constraint: "
        "Member must have length less than or equal to 256",
    ),
    (
        "value of 1025",
        {"OutputParameters": [{"Name": "n", "Value": "1" * 1025}]},
        "at 'outputParameters.1.member.value' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024",
    ),
    (
        "request token of 129",
        {"ClientRequestToken": "c" * 129},
        "at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 128",
    ),
    (
        "repeated output name",
        {"OutputParameters": [{"Name": "n", "Value": "1"}, {"Name": "n", "Value": "2"}]},
        "OutputParameters names 'n' more than once",
    ),
]


@pytest.mark.parametrize(("rule", "overrides", "message"), SUCCESS_RULES, ids=[rule[0] for rule in SUCCESS_RULES])
def test_success_requests_breaking_a_service_rule_are_refused_and_change_nothing(
    sagemaker_client: SageMakerClient, live_token: tuple[str, str], rule: str, overrides: dict[str, Any], message: str
) -> None:
    token, arn = live_token
    request = {"CallbackToken": token, "OutputParameters": [{"Name": "n", "Value": "1"}], **overrides}
    error = rejected(lambda: sagemaker_client.send_pipeline_execution_step_success(**request))
    assert error["Code"] == "ValidationException"
    assert message in error["Message"]
    assert list_steps(sagemaker_client, arn)["A"]["StepStatus"] == "Executing"


FAILURE_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("token pattern", {"CallbackToken": "abcdefghi-"}, "Member must satisfy regular expression pattern: [a-zA-Z0-9]+"),
    ("reason of 257", {"FailureReason": "r" * 257}, "Member must have length less than or equal to 256"),
    ("request token of 129", {"ClientRequestToken": "c" * 129}, "Member must have length less than or equal to 128"),
]


@pytest.mark.parametrize(("rule", "overrides", "message"), FAILURE_RULES, ids=[rule[0] for rule in FAILURE_RULES])
def test_failure_requests_breaking_a_service_rule_are_refused_and_change_nothing(
    sagemaker_client: SageMakerClient, live_token: tuple[str, str], rule: str, overrides: dict[str, Any], message: str
) -> None:
    token, arn = live_token
    request = {"CallbackToken": token, "FailureReason": "broken", **overrides}
    error = rejected(lambda: sagemaker_client.send_pipeline_execution_step_failure(**request))
    assert error["Code"] == "ValidationException"
    assert message in error["Message"]
    assert list_steps(sagemaker_client, arn)["A"]["StepStatus"] == "Executing"


def test_limits_themselves_are_accepted(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    outputs: list[OutputParameterTypeDef] = [{"Name": f"{index:0>256}", "Value": "v" * 1024} for index in range(50)]
    for answer in ("success", "failure"):
        arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(queue_url)))
        [message] = receive_messages(sqs_client, queue_url, 1)
        if answer == "success":
            sagemaker_client.send_pipeline_execution_step_success(
                CallbackToken=message["token"], OutputParameters=outputs, ClientRequestToken="c" * 128
            )
            wait_for_status(sagemaker_client, arn, "Succeeded")
        else:
            sagemaker_client.send_pipeline_execution_step_failure(
                CallbackToken=message["token"], FailureReason="r" * 256, ClientRequestToken="c" * 32
            )
            wait_for_status(sagemaker_client, arn, "Failed")
            assert list_steps(sagemaker_client, arn)["A"]["FailureReason"] == "r" * 256


def test_unknown_tokens_are_resource_not_found(sagemaker_client: SageMakerClient) -> None:
    with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
        sagemaker_client.send_pipeline_execution_step_success(CallbackToken="Unknown123")
    with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
        sagemaker_client.send_pipeline_execution_step_failure(CallbackToken="Unknown123", FailureReason="x")


def test_the_same_success_replayed_with_its_request_token_gets_the_same_response(
    sagemaker_client: SageMakerClient, live_token: tuple[str, str]
) -> None:
    token, arn = live_token
    request_token = str(uuid.uuid4())
    outputs: list[OutputParameterTypeDef] = [{"Name": "n", "Value": "5"}]
    first = sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=outputs, ClientRequestToken=request_token
    )
    replay = sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=outputs, ClientRequestToken=request_token
    )
    assert replay["PipelineExecutionArn"] == first["PipelineExecutionArn"] == arn
    assert replay["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_for_status(sagemaker_client, arn, "Succeeded")
    assert list_steps(sagemaker_client, arn)["A"]["Metadata"]["Callback"]["OutputParameters"] == outputs

    conflicts: list[Callable[[], Any]] = [
        lambda: sagemaker_client.send_pipeline_execution_step_success(
            CallbackToken=token, OutputParameters=outputs, ClientRequestToken=str(uuid.uuid4())
        ),
        lambda: sagemaker_client.send_pipeline_execution_step_success(
            CallbackToken=token, OutputParameters=[{"Name": "n", "Value": "6"}], ClientRequestToken=request_token
        ),
        lambda: sagemaker_client.send_pipeline_execution_step_failure(
            CallbackToken=token, FailureReason="late", ClientRequestToken=request_token
        ),
        lambda: sagemaker_client.send_pipeline_execution_step_success(CallbackToken=token, OutputParameters=outputs),
    ]
    for conflict in conflicts:
        with pytest.raises(sagemaker_client.exceptions.ConflictException):
            conflict()


def test_the_same_failure_replayed_with_its_request_token_gets_the_same_response(
    sagemaker_client: SageMakerClient, live_token: tuple[str, str]
) -> None:
    token, arn = live_token
    request_token = str(uuid.uuid4())
    for _ in range(2):
        response = sagemaker_client.send_pipeline_execution_step_failure(
            CallbackToken=token, FailureReason="gave up", ClientRequestToken=request_token
        )
        assert response["PipelineExecutionArn"] == arn
    with pytest.raises(sagemaker_client.exceptions.ConflictException) as raised:
        sagemaker_client.send_pipeline_execution_step_failure(CallbackToken=token, FailureReason="gave up")
    assert "already Failed" in raised.value.response["Error"]["Message"]
    wait_for_status(sagemaker_client, arn, "Failed")
    assert list_steps(sagemaker_client, arn)["A"]["FailureReason"] == "gave up"


def test_unknown_pipelines_and_executions_are_resource_not_found(sagemaker_client: SageMakerClient) -> None:
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    calls: list[Callable[[], Any]] = [
        lambda: sagemaker_client.describe_pipeline(PipelineName=missing),
        lambda: sagemaker_client.describe_pipeline(
            PipelineName=f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{missing}"
        ),
        lambda: sagemaker_client.delete_pipeline(PipelineName=missing, ClientRequestToken=str(uuid.uuid4())),
        lambda: sagemaker_client.start_pipeline_execution(PipelineName=missing, ClientRequestToken=str(uuid.uuid4())),
        lambda: sagemaker_client.list_pipeline_executions(PipelineName=missing),
        lambda: sagemaker_client.describe_pipeline_execution(PipelineExecutionArn=OTHER_EXECUTION),
        lambda: sagemaker_client.stop_pipeline_execution(
            PipelineExecutionArn=OTHER_EXECUTION, ClientRequestToken=str(uuid.uuid4())
        ),
        lambda: sagemaker_client.list_pipeline_execution_steps(PipelineExecutionArn=OTHER_EXECUTION),
        lambda: sagemaker_client.list_pipeline_parameters_for_execution(PipelineExecutionArn=OTHER_EXECUTION),
    ]
    for call in calls:
        with pytest.raises(sagemaker_client.exceptions.ResourceNotFound):
            call()
    error = rejected(lambda: sagemaker_client.describe_pipeline(PipelineName=missing))
    assert error["Message"] == f"Pipeline 'arn:aws:sagemaker:us-east-1:123456789012:pipeline/{missing}' does not exist."


def test_listing_steps_needs_an_execution_arn(sagemaker_client: SageMakerClient) -> None:
    error = rejected(sagemaker_client.list_pipeline_execution_steps)
    assert error == {"Code": "ValidationException", "Message": "PipelineExecutionArn is required"}


def test_a_foreign_next_token_is_refused(sagemaker_client: SageMakerClient, queue_url: str) -> None:
    for _ in range(2):
        create_pipeline(sagemaker_client, one_step_definition(queue_url))
    page = sagemaker_client.list_pipelines(MaxResults=1)
    arn = start_execution(sagemaker_client, create_pipeline(sagemaker_client, one_step_definition(queue_url)))
    for token in (page["NextToken"], "not-a-token"):
        error = rejected(
            functools.partial(sagemaker_client.list_pipeline_execution_steps, PipelineExecutionArn=arn, NextToken=token)
        )
        assert error["Code"] == "ValidationException"
        assert "NextToken" in error["Message"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"Unknown": "1"}, "Parameter 'Unknown' is not defined in the pipeline definition (defined: Size)"),
        ({"Size": "large"}, "Parameter 'Size': 'large' is not a valid Integer value"),
    ],
)
def test_start_refuses_parameters_the_definition_does_not_allow(
    sagemaker_client: SageMakerClient, queue_url: str, parameters: dict[str, str], message: str
) -> None:
    pipeline = create_pipeline(sagemaker_client, two_step_definition(queue_url))
    error = rejected(lambda: start_execution(sagemaker_client, pipeline, parameters))
    assert error == {"Code": "ValidationException", "Message": message}
    assert sagemaker_client.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"] == []


@pytest.mark.parametrize(
    ("definition", "fragments"),
    [
        ("{not json", ["Invalid pipeline definition", "not valid JSON"]),
        (
            '{"Version": "2020-12-01", "Steps": [{"Name": "Train", "Type": "Training", "Arguments": {}}]}',
            ["'Train'", "'Training'", "not supported"],
        ),
        (
            '{"Version": "2020-12-01", "Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": "q"},'
            ' {"Name": "A", "Type": "Callback", "SqsQueueUrl": "q"}]}',
            ["'A' is used more than once"],
        ),
        (
            '{"Version": "2020-12-01", "Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": "q",'
            ' "DependsOn": ["B"]}, {"Name": "B", "Type": "Callback", "SqsQueueUrl": "q", "DependsOn": ["A"]}]}',
            ["cycle", "'A'", "'B'"],
        ),
    ],
)
def test_create_refuses_bad_definitions(
    sagemaker_client: SageMakerClient, definition: str, fragments: list[str]
) -> None:
    error = rejected(lambda: create_pipeline(sagemaker_client, definition))
    assert error["Code"] == "ValidationException"
    for fragment in fragments:
        assert fragment in error["Message"]
