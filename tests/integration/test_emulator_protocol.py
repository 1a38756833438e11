"""The wire protocol itself: bad targets, bad bodies and stray requests all get JSON errors botocore understands."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from callback_worker.emulator import EmulatorServer, ThreadedEmulatorServer

JSON_11 = "application/x-amz-json-1.1"


@pytest.fixture
async def server(moto_server: str) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer("127.0.0.1", 0) as running:
        yield running


async def post(
    server: EmulatorServer, body: bytes | io.BytesIO, target: str | None, method: str = "POST", path: str = "/"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": JSON_11}
    if target is not None:
        headers["X-Amz-Target"] = target
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.endpoint_url + path, data=body, headers=headers) as response,
    ):
        assert response.headers["Content-Type"] == JSON_11
        assert response.headers["x-amzn-RequestId"]
        document: dict[str, Any] = json.loads(await response.read())
        return response.status, document


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (None, "no X-Amz-Target header"),
        ("ListPipelines", "does not name a SageMaker operation"),
        ("SageMaker.", "does not name a SageMaker operation"),
        ("Kinesis_20131202.ListStreams", "does not name a SageMaker operation"),
        ("SageMaker.CreateTrainingJob", "'CreateTrainingJob' is not supported"),
    ],
)
async def test_missing_garbled_or_unserved_targets_are_unknown_operations(
    server: EmulatorServer, target: str | None, fragment: str
) -> None:
    status, document = await post(server, b"{}", target)
    assert status == 400
    assert document["__type"] == "UnknownOperationException"
    assert fragment in document["Message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"MaxResults": NaN}', "NaN is not valid JSON"),
        (b'{"MaxResults": "ten"}', "Expected an integer at 'maxResults' but found string"),
        (b'{"PipelineNamePrefix": 5}', "Expected a string at 'pipelineNamePrefix' but found number"),
        (b'{"MaxResults": true}', "Expected an integer at 'maxResults' but found boolean"),
    ],
)
async def test_bodies_that_cannot_be_read_are_serialization_errors(
    server: EmulatorServer, body: bytes, fragment: str
) -> None:
    status, document = await post(server, body, "SageMaker.ListPipelines")
    assert status == 400
    assert document["__type"] == "SerializationException"
    assert fragment in document["Message"]


async def test_a_body_beyond_the_size_limit_is_refused(server: EmulatorServer) -> None:
    status, document = await post(server, io.BytesIO(b" " * (5 * 1024 * 1024)), "SageMaker.CreatePipeline")
    assert status == 400
    assert document["__type"] == "SerializationException"
    assert "exceeds" in document["Message"]


async def test_an_empty_body_is_an_empty_request(server: EmulatorServer) -> None:
    status, document = await post(server, b"", "SageMaker.ListPipelines")
    assert (status, document) == (200, {"PipelineSummaries": []})


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("POST", "/other"), ("PUT", "/")])
async def test_requests_that_are_not_post_slash_get_json_errors(server: EmulatorServer, method: str, path: str) -> None:
    status, document = await post(server, b"{}", "SageMaker.ListPipelines", method, path)
    assert status == 400
    assert document["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    ("operation", "body", "fragment"),
    [
        ("SendPipelineExecutionStepSuccess", {"CallbackToken": "abcdefghi"}, "greater than or equal to 10"),
        (
            "SendPipelineExecutionStepFailure",
            {"CallbackToken": "abcdefghij", "ClientRequestToken": "x" * 31},
            "Value 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' at 'clientRequestToken' failed to satisfy constraint: "
            "Member must have length greater than or equal to 32",
        ),
        ("SendPipelineExecutionStepSuccess", {}, "Value null at 'callbackToken'"),
    ],
)
async def test_what_botocore_would_stop_is_also_refused_by_the_server(
    server: EmulatorServer, operation: str, body: dict[str, Any], fragment: str
) -> None:
    status, document = await post(server, json.dumps(body).encode(), f"SageMaker.{operation}")
    assert status == 400
    assert document["__type"] == "ValidationException"
    assert fragment in document["Message"]


async def test_a_bug_in_a_handler_is_a_json_internal_failure(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(params: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    assert server._operations is not None
    monkeypatch.setitem(server._operations.handlers, "ListPipelines", broken)
    status, document = await post(server, b"{}", "SageMaker.ListPipelines")
    assert status == 500
    assert document["__type"] == "InternalFailure"
    assert "boom" not in document["Message"]


async def test_aiobotocore_sees_unserved_operations_as_client_errors_without_retrying(server: EmulatorServer) -> None:
    async with get_session().create_client("sagemaker", endpoint_url=server.endpoint_url) as client:
        with pytest.raises(ClientError) as raised:
            await client.list_models()
    assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_honours_aws_endpoint_url_sagemaker(
    threaded_emulator: ThreadedEmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", threaded_emulator.endpoint_url)
    client = boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
    try:
        assert client.list_pipelines()["PipelineSummaries"] == []
        with pytest.raises(ClientError) as raised:
            client.describe_model(ModelName="m")
        assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    finally:
        client.close()
