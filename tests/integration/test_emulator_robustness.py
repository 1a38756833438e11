"""Client input never gets an HTTP 500: numbers and nesting JSON cannot carry back are 400s over the wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from callback_worker.emulator import EmulatorServer
from tests.integration.test_emulator_protocol import post

DEFINITION_HEAD = (
    '{"Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": "https://q.example/q", "Arguments": {"x": '
)


@pytest.fixture
async def server(moto_server: str) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer("127.0.0.1", 0) as running:
        yield running


def create_request(argument: str) -> bytes:
    definition = DEFINITION_HEAD + argument + "}}]}"
    request = {
        "PipelineName": "edge",
        "PipelineDefinition": definition,
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "ClientRequestToken": "c" * 32,
    }
    return json.dumps(request).encode()


@pytest.mark.parametrize(
    ("body", "target", "code"),
    [
        (b'{"MaxResults": 1' + b"0" * 5000 + b"}", "SageMaker.ListPipelines", "SerializationException"),
        (b'{"MaxResults": 1e999}', "SageMaker.ListPipelines", "SerializationException"),
        (b'{"PipelineName": ' + b"[" * 5000 + b"]" * 5000 + b"}", "SageMaker.ListPipelines", "SerializationException"),
        (create_request("[" * 1000 + "1" + "]" * 1000), "SageMaker.CreatePipeline", "ValidationException"),
        (create_request("1e999"), "SageMaker.CreatePipeline", "ValidationException"),
        (create_request("1" * 5000), "SageMaker.CreatePipeline", "ValidationException"),
    ],
)
async def test_inputs_at_the_edges_are_client_errors(
    server: EmulatorServer, body: bytes, target: str, code: str
) -> None:
    status, document = await post(server, body, target)
    assert (status, document["__type"]) == (400, code)
