"""callback_worker/ops/reads.py against botocore's Stubber: every page is read through NextToken, and ``pending`` keeps
only callback steps still waiting in running executions. Requests and answers are checked against the service model."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from callback_worker.ops import reads
from callback_worker.ops.errors import ExitCode

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "arn:aws:sagemaker:us-east-1:123456789012"


def execution(pipeline: str, execution_id: str) -> str:
    return f"{ACCOUNT}:pipeline/{pipeline}/execution/{execution_id}"


def step(name: str, status: str, minutes: int, *, callback: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = (
        {"Callback": {"CallbackToken": f"{name[:1]}12345678Z", "SqsQueueUrl": "https://sqs/q"}}
        if callback
        else {"TrainingJob": {"Arn": f"{ACCOUNT}:training-job/t"}}
    )
    return {"StepName": name, "StepStatus": status, "StartTime": T0 + timedelta(minutes=minutes), "Metadata": metadata}


@pytest.fixture
def stubbed() -> Iterator[tuple[SageMakerClient, Stubber]]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
    client.close()


def expect_steps(stubber: Stubber, arn: str, pages: list[list[dict[str, Any]]], page_size: int = 100) -> None:
    for index, page in enumerate(pages):
        params: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Ascending", "MaxResults": page_size}
        if index:
            params["NextToken"] = f"steps-{index}"
        response: dict[str, Any] = {"PipelineExecutionSteps": page}
        if index < len(pages) - 1:
            response["NextToken"] = f"steps-{index + 1}"
        stubber.add_response("list_pipeline_execution_steps", response, params)


def test_execution_steps_reads_every_page(stubbed: tuple[SageMakerClient, Stubber]) -> None:
    client, stubber = stubbed
    arn = execution("p", "abcdef123456")
    expect_steps(stubber, arn, [[step("A", "Succeeded", 0)], [step("B", "Executing", 1)]], page_size=1)
    assert [found["StepName"] for found in reads.execution_steps(client, arn, page_size=1)] == ["A", "B"]


def test_pending_walks_pipelines_executions_and_steps(stubbed: tuple[SageMakerClient, Stubber]) -> None:
    client, stubber = stubbed
    listing = {"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 100}
    stubber.add_response(
        "list_pipelines", {"PipelineSummaries": [{"PipelineName": "alpha"}], "NextToken": "p-1"}, listing
    )
    stubber.add_response(
        "list_pipelines", {"PipelineSummaries": [{"PipelineName": "beta"}]}, listing | {"NextToken": "p-1"}
    )
    running, stopping = execution("alpha", "aaaaaaaaaaaa"), execution("beta", "bbbbbbbbbbbb")
    stubber.add_response(
        "list_pipeline_executions",
        {
            "PipelineExecutionSummaries": [
                {"PipelineExecutionArn": running, "PipelineExecutionStatus": "Executing"},
                {"PipelineExecutionArn": execution("alpha", "cccccccccccc"), "PipelineExecutionStatus": "Succeeded"},
            ]
        },
        {"PipelineName": "alpha", "MaxResults": 100},
    )
    expect_steps(
        stubber,
        running,
        [[step("Done", "Succeeded", 0), step("Train", "Executing", 1, callback=False)], [step("Wait", "Executing", 5)]],
    )
    stubber.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": [{"PipelineExecutionArn": stopping, "PipelineExecutionStatus": "Stopping"}]},
        {"PipelineName": "beta", "MaxResults": 100},
    )
    expect_steps(stubber, stopping, [[step("Gate", "Stopping", 2), step("Fresh", "Starting", 9)]])

    waiting = reads.waiting_steps(client)
    assert [(item.pipeline_name, item.step["StepName"], item.execution_status) for item in waiting] == [
        ("beta", "Gate", "Stopping"),
        ("alpha", "Wait", "Executing"),
        ("beta", "Fresh", "Stopping"),
    ]  # oldest first; finished executions, non-callback and answered steps left out


def test_pending_skips_a_pipeline_deleted_meanwhile(stubbed: tuple[SageMakerClient, Stubber]) -> None:
    client, stubber = stubbed
    listing = {"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 100}
    stubber.add_response("list_pipelines", {"PipelineSummaries": [{"PipelineName": "gone"}]}, listing)
    stubber.add_client_error("list_pipeline_executions", "ResourceNotFound", "Pipeline 'gone' does not exist.")
    assert reads.waiting_steps(client) == []


def test_pending_for_named_pipelines_lists_no_pipelines(stubbed: tuple[SageMakerClient, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "list_pipeline_executions", {"PipelineExecutionSummaries": []}, {"PipelineName": "only", "MaxResults": 100}
    )
    assert reads.waiting_steps(client, ["only"]) == []


def test_steps_of_an_execution_where_nothing_started_says_so(
    stubbed: tuple[SageMakerClient, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = stubbed
    arn = execution("p", "abcdef123456")
    expect_steps(stubber, arn, [[]])
    monkeypatch.setattr(reads, "sagemaker_client", lambda: client)
    assert reads.steps(argparse.Namespace(execution_arn=arn, json=False)) == ExitCode.OK
    assert capsys.readouterr() == ("", f"callback-worker: no step of {arn} has started\n")
