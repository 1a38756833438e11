"""Integration fixtures: the emulator on the test's own event loop, and AWS clients for tests to drive it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiobotocore.session import get_session

from callback_worker.emulator.server import EmulatorServer


@pytest.fixture
async def loop_emulator(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EmulatorServer]:
    """The SageMaker emulator on this test's loop; ``AWS_ENDPOINT_URL_SAGEMAKER`` points at it."""
    async with EmulatorServer(host="127.0.0.1", port=0) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", server.endpoint_url)
        yield server


@pytest.fixture
async def sagemaker(loop_emulator: EmulatorServer) -> AsyncIterator[Any]:
    """An aiobotocore SageMaker client on the emulator."""
    async with get_session().create_client("sagemaker", endpoint_url=loop_emulator.endpoint_url) as client:
        yield client


@pytest.fixture
async def sqs(moto_server: str) -> AsyncIterator[Any]:
    """An aiobotocore SQS client on the moto server."""
    async with get_session().create_client("sqs", endpoint_url=moto_server) as client:
        yield client


QueueFactory = Callable[..., Coroutine[Any, Any, tuple[str, str]]]


@pytest.fixture
def make_queue(sqs: Any) -> QueueFactory:
    """Create a queue and its dead-letter queue (redrive after ``max_receive_count`` receives); returns both URLs."""

    async def make(max_receive_count: int = 5) -> tuple[str, str]:
        name = f"q-{uuid.uuid4().hex[:12]}"
        dlq_url = (await sqs.create_queue(QueueName=f"{name}-dlq"))["QueueUrl"]
        attributes = await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": attributes["Attributes"]["QueueArn"], "maxReceiveCount": max_receive_count}
        queue_url = (await sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(redrive)}))[
            "QueueUrl"
        ]
        return str(queue_url), str(dlq_url)

    return make
