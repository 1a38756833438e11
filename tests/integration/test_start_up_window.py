"""``run``'s start-up checks (``worker.app.preflight``) on AWS's own endpoints: one connection reset from SQS, one
``AccessDenied`` from SageMaker is waited out within the start-up window, so a correctly configured worker starts
rather than exiting 2 and crash-looping. Real servers on 127.0.0.1 (moto, the emulator) behind a fault proxy; the
clients are given the proxy's URL directly and ``environ`` names no ``AWS_ENDPOINT_URL*``, so the check treats the
endpoints as AWS's own. (With an override set, the same faults stop start-up at once: tests/e2e/test_cli_preflight.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from callback_worker.config.settings import Settings
from callback_worker.emulator.server import EmulatorServer
from callback_worker.worker.app import preflight
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.sqs import SqsQueue
from tests.faultproxy import FaultProxy, Rule

#: One try per call: each fault the proxy answers is one failed start-up call, not absorbed by botocore's retries.
ONE_TRY = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})


@asynccontextmanager
async def clients(sqs_url: str, sagemaker_url: str) -> AsyncIterator[tuple[Any, Any]]:
    session = get_session()
    async with (
        session.create_client("sqs", endpoint_url=sqs_url, config=ONE_TRY) as sqs,
        session.create_client("sagemaker", endpoint_url=sagemaker_url, config=ONE_TRY) as sagemaker,
    ):
        yield sqs, sagemaker


async def start_up(queue_url: str, sqs: Any, sagemaker: Any, window: float | None = None) -> dict[str, Any]:
    settings = Settings(queue_url=queue_url, verify_tokens=True)
    queue = SqsQueue(sqs, queue_url, visibility_timeout=60, wait_time=1)
    if window is None:
        return await preflight(settings, queue, sqs, sagemaker, environ={})
    return await preflight(settings, queue, sqs, sagemaker, environ={}, window=window)


async def test_one_connection_reset_from_sqs_is_waited_out(
    queue_url: str, moto_server: str, loop_emulator: EmulatorServer
) -> None:
    async with FaultProxy(moto_server) as proxy:
        reset = proxy.add(Rule("GetQueueAttributes", "reset"))
        async with clients(proxy.url, loop_emulator.endpoint_url) as (sqs, sagemaker):
            attributes = await start_up(queue_url, sqs, sagemaker)
    assert reset.fired == 1
    assert proxy.count("GetQueueAttributes") == 2
    assert attributes["QueueArn"].endswith(queue_url.rsplit("/", 1)[-1])


async def test_one_access_denied_from_sagemaker_is_waited_out(
    queue_url: str, moto_server: str, loop_emulator: EmulatorServer
) -> None:
    async with FaultProxy(loop_emulator.endpoint_url) as proxy:
        denied = proxy.add(Rule("ListPipelineExecutionSteps", "error", code="AccessDeniedException"))
        async with clients(moto_server, proxy.url) as (sqs, sagemaker):
            await start_up(queue_url, sqs, sagemaker)
    assert denied.fired == 1
    assert proxy.count("ListPipelineExecutionSteps") == 2


async def test_a_denial_that_outlasts_the_window_stops_start_up_naming_the_permission(
    queue_url: str, moto_server: str, loop_emulator: EmulatorServer
) -> None:
    async with FaultProxy(loop_emulator.endpoint_url) as proxy:
        proxy.add(Rule("ListPipelineExecutionSteps", "error", times=1_000, code="AccessDeniedException"))
        async with clients(moto_server, proxy.url) as (sqs, sagemaker):
            with pytest.raises(ConfigurationError) as stopped:
                await start_up(queue_url, sqs, sagemaker, window=0.0)
    assert str(stopped.value) == (
        "SageMaker: denied ListPipelineExecutionSteps (AccessDeniedException), which "
        "CALLBACK_WORKER_VERIFY_TOKENS=true needs; grant sagemaker:ListPipelineExecutionSteps on "
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/*/execution/* (a role limited to named pipelines must "
        "also allow pipeline/callback-worker-preflight, the made-up one the check asks about)"
    )
