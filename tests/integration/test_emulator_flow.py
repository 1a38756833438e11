"""A two-step callback pipeline driven end to end through the emulator by boto3 and by aiobotocore.

Step B reads A's outputs through ``Get``; the SQS messages are read from the moto server and compared key by
key and type by type with the documented format.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from aiobotocore.session import get_session

from callback_worker.emulator import EmulatorServer
from tests.emulator_fixtures import (
    assert_json_matches,
    create_pipeline,
    list_steps,
    receive_messages,
    two_step_definition,
    wait_for_status,
)

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient as AsyncSageMakerClient
    from types_aiobotocore_sqs import SQSClient as AsyncSQSClient
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sagemaker.type_defs import OutputParameterTypeDef
    from types_boto3_sqs import SQSClient

EXECUTION_ARN = re.compile(
    r"arn:aws:sagemaker:us-east-1:123456789012:pipeline/(?P<pipeline>[a-z0-9-]+)/execution/(?P<id>[a-z0-9]{12})"
)
TOKEN = re.compile(r"[A-Za-z0-9]{10}")
A_OUTPUTS: list[OutputParameterTypeDef] = [
    {"Name": "count", "Value": "3"},
    {"Name": "ratio", "Value": "0.25"},
    {"Name": "ok", "Value": "true"},
    {"Name": "label", "Value": "hello"},
]


def expected_message(token: str, execution_arn: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"token": token, "pipelineExecutionArn": execution_arn, "arguments": arguments, "status": "Executing"}


def test_boto3_drives_a_two_step_pipeline(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    name = create_pipeline(sagemaker_client, two_step_definition(queue_url))
    arn = sagemaker_client.start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=[{"Name": "Size", "Value": "7"}],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    match = EXECUTION_ARN.fullmatch(arn)
    assert match is not None
    assert match["pipeline"] == name.lower()

    [first] = receive_messages(sqs_client, queue_url, 1)
    assert TOKEN.fullmatch(first["token"])
    assert_json_matches(
        first, expected_message(first["token"], arn, {"size": 7, "name": "first", "weights": [1, 2.5, True, None]})
    )
    running = list_steps(sagemaker_client, arn)
    assert list(running) == ["A"]
    assert running["A"]["StepStatus"] == "Executing"
    assert running["A"]["Metadata"]["Callback"] == {"CallbackToken": first["token"], "SqsQueueUrl": queue_url}

    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=first["token"], OutputParameters=A_OUTPUTS)
    [second] = receive_messages(sqs_client, queue_url, 1)
    assert second["token"] != first["token"]
    assert_json_matches(
        second,
        expected_message(
            second["token"],
            arn,
            {"count": 3, "ratio": 0.25, "ok": True, "label": "hello", "execution": match["id"]},
        ),
    )
    sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=second["token"], OutputParameters=[{"Name": "result", "Value": "done"}]
    )

    description = wait_for_status(sagemaker_client, arn, "Succeeded")
    assert description["PipelineExperimentConfig"] == {"ExperimentName": name, "TrialName": match["id"]}
    assert "FailureReason" not in description
    assert description["LastModifiedTime"] >= description["CreationTime"]
    steps = list_steps(sagemaker_client, arn)
    assert {step: steps[step]["StepStatus"] for step in steps} == {"A": "Succeeded", "B": "Succeeded"}
    assert steps["A"]["Metadata"]["Callback"] == {
        "CallbackToken": first["token"],
        "SqsQueueUrl": queue_url,
        "OutputParameters": A_OUTPUTS,
    }
    assert steps["B"]["Metadata"]["Callback"]["OutputParameters"] == [{"Name": "result", "Value": "done"}]
    assert steps["A"]["StartTime"] <= steps["A"]["EndTime"] <= steps["B"]["StartTime"] <= steps["B"]["EndTime"]


def test_steps_are_sorted_and_paginated(
    sagemaker_client: SageMakerClient, sqs_client: SQSClient, queue_url: str
) -> None:
    name = create_pipeline(sagemaker_client, two_step_definition(queue_url))
    arn = sagemaker_client.start_pipeline_execution(PipelineName=name, ClientRequestToken=str(uuid.uuid4()))[
        "PipelineExecutionArn"
    ]
    [first] = receive_messages(sqs_client, queue_url, 1)
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=first["token"], OutputParameters=A_OUTPUTS)
    receive_messages(sqs_client, queue_url, 1)

    newest_first = sagemaker_client.list_pipeline_execution_steps(PipelineExecutionArn=arn)
    assert [step["StepName"] for step in newest_first["PipelineExecutionSteps"]] == ["B", "A"]
    oldest_first = sagemaker_client.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
    assert [step["StepName"] for step in oldest_first["PipelineExecutionSteps"]] == ["A", "B"]

    page_one = sagemaker_client.list_pipeline_execution_steps(
        PipelineExecutionArn=arn, MaxResults=1, SortOrder="Ascending"
    )
    assert [step["StepName"] for step in page_one["PipelineExecutionSteps"]] == ["A"]
    page_two = sagemaker_client.list_pipeline_execution_steps(
        PipelineExecutionArn=arn, MaxResults=1, SortOrder="Ascending", NextToken=page_one["NextToken"]
    )
    assert [step["StepName"] for step in page_two["PipelineExecutionSteps"]] == ["B"]
    assert "NextToken" not in page_two

    pages = sagemaker_client.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=arn, PaginationConfig={"PageSize": 1}
    )
    assert [[step["StepName"] for step in page["PipelineExecutionSteps"]] for page in pages] == [["B"], ["A"]]


async def _receive_one(sqs: AsyncSQSClient, queue_url: str) -> dict[str, Any]:
    for _ in range(10):
        response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body: dict[str, Any] = json.loads(message["Body"])
            return body
    raise AssertionError("no callback message arrived")


async def _run_two_steps(sagemaker: AsyncSageMakerClient, sqs: AsyncSQSClient, queue_url: str) -> str:
    await sagemaker.create_pipeline(
        PipelineName="async-pipeline",
        PipelineDefinition=two_step_definition(queue_url),
        RoleArn="arn:aws:iam::123456789012:role/pipeline-role",
        ClientRequestToken=str(uuid.uuid4()),
    )
    started = await sagemaker.start_pipeline_execution(
        PipelineName="async-pipeline", ClientRequestToken=str(uuid.uuid4())
    )
    arn = started["PipelineExecutionArn"]
    first = await _receive_one(sqs, queue_url)
    assert_json_matches(
        first, expected_message(first["token"], arn, {"size": 5, "name": "first", "weights": [1, 2.5, True, None]})
    )
    await sagemaker.send_pipeline_execution_step_success(CallbackToken=first["token"], OutputParameters=A_OUTPUTS)
    second = await _receive_one(sqs, queue_url)
    assert_json_matches(second["arguments"]["count"], 3)
    assert second["arguments"]["ok"] is True
    await sagemaker.send_pipeline_execution_step_success(
        CallbackToken=second["token"], OutputParameters=[{"Name": "result", "Value": "done"}]
    )
    return arn


async def test_aiobotocore_drives_a_two_step_pipeline(moto_server: str, queue_url: str) -> None:
    session = get_session()
    async with (
        EmulatorServer("127.0.0.1", 0) as server,
        session.create_client("sagemaker", endpoint_url=server.endpoint_url) as sagemaker,
        session.create_client("sqs", endpoint_url=moto_server) as sqs,
    ):
        arn = await _run_two_steps(sagemaker, sqs, queue_url)
        description = await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        assert description["PipelineExecutionStatus"] == "Succeeded"
        steps = await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
        assert [step["StepName"] for step in steps["PipelineExecutionSteps"]] == ["A", "B"]
        assert [step["StepStatus"] for step in steps["PipelineExecutionSteps"]] == ["Succeeded", "Succeeded"]
        assert steps["PipelineExecutionSteps"][0]["Metadata"]["Callback"]["OutputParameters"] == A_OUTPUTS
        assert [message.status for message in server.sent_messages] == ["Executing", "Executing"]
