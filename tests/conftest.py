"""Shared fixtures: dummy AWS credentials and one moto SQS server for the whole session.

Nothing here may reach real AWS: region, credentials and every endpoint are set explicitly
before any client is built.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from callback_worker.offline import offline_aws_env

pytest_plugins = ["tests.emulator_fixtures"]

AWS_ENV = {**offline_aws_env(), "AWS_SESSION_TOKEN": "test", "AWS_MAX_ATTEMPTS": "3"}


@pytest.fixture(scope="session", autouse=True)
def aws_env() -> Iterator[None]:
    """Dummy credentials and region for every test; no test can fall through to real AWS."""
    saved = {key: os.environ.get(key) for key in AWS_ENV}
    os.environ.update(AWS_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_server(aws_env: None) -> Iterator[str]:
    """One moto server on 127.0.0.1 (free port) for every AWS service the tests fake: SQS (``AWS_ENDPOINT_URL_SQS`` is
    set to it), and Glue, Step Functions, Batch, Lambda and S3 for the tests that point their clients at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL_SQS"] = url
    yield url
    os.environ.pop("AWS_ENDPOINT_URL_SQS", None)
    server.stop()


@pytest.fixture
def sqs_client(moto_server: str) -> object:
    """A plain boto3 SQS client on the moto server."""
    return boto3.client("sqs", endpoint_url=moto_server)


@pytest.fixture
def queue_url(sqs_client: object) -> str:
    """A fresh standard queue for one test."""
    response = sqs_client.create_queue(QueueName=f"callbacks-{uuid.uuid4().hex[:12]}")  # type: ignore[attr-defined]
    return str(response["QueueUrl"])
