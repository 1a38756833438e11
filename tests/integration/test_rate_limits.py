"""Rate limits over HTTP: the emulator's ``--rate-limit`` as a client sees it, and the worker living within one —
reports waiting for SageMaker hold their lease, not a handler slot; every attempt passes the worker's limiter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callback_worker.emulator.faults import FaultConfig
from callback_worker.emulator.ratelimit import RateLimiter
from callback_worker.emulator.server import EmulatorServer
from callback_worker.worker.clients import aws_clients
from callback_worker.worker.handler import CallbackContext
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, one_step_definition, running_worker, wait_for_status, worker_settings

SUCCESS = "SendPipelineExecutionStepSuccess"


async def test_a_rate_limit_answers_throttling_exception_with_http_400(
    loop_emulator: EmulatorServer, sagemaker: Any
) -> None:
    loop_emulator.rate_limits = RateLimiter.from_specs(["ListPipelines=3"])
    async with aws_clients(1) as (_, worker_client):  # the worker's SageMaker client: botocore retries off
        outcomes = await asyncio.gather(*(worker_client.list_pipelines() for _ in range(6)), return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, ClientError)]
    assert len(errors) == 3  # a burst of one second's worth passes; the bucket is then empty
    assert {(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) for e in errors} == {
        ("ThrottlingException", 400)
    }
    assert loop_emulator.rate_limits.throttled == {"ListPipelines": 3}
    assert loop_emulator.calls["ListPipelines"] == 6  # every attempt reached the server once: no hidden retries
    for _ in range(6):  # other operations are not limited: answered, here with ResourceNotFound
        with pytest.raises(ClientError, match="ResourceNotFound"):
            await sagemaker.list_pipeline_executions(PipelineName="absent")


async def test_reports_waiting_for_sagemaker_hold_their_lease_not_a_handler_slot(
    loop_emulator: EmulatorServer, sagemaker: Any, make_queue: QueueFactory
) -> None:
    """With every Send throttled, a worker of two slots still runs four handlers: two reports wait without a slot
    (at most ``concurrency`` of them), then the next two keep theirs. Before, two waiting reports held both slots."""
    ran: list[str] = []

    async def quick(context: CallbackContext) -> dict[str, str]:
        ran.append(context.token)
        return {}

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    loop_emulator.faults = FaultConfig().with_operation(SUCCESS, throttle=1.0)
    settings = worker_settings(queue_url, handler="quick", concurrency=2)
    async with running_worker(settings, {"quick": quick}) as worker:
        arns = [
            (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"] for _ in "1234"
        ]
        async with asyncio.timeout(30):
            while len(ran) < 4:
                await asyncio.sleep(0.05)
        assert worker.tally["reports_started"] - worker.tally["reports_ended"] == 4  # all four still waiting
        assert worker.sagemaker.throttled > 0
        assert [loop_emulator.store.tokens[token][1].end_time for token in ran] == [None] * 4  # none answered
        await asyncio.sleep(1.0)
        assert len(ran) == 4, "a fifth message was taken in while four reports waited"
        loop_emulator.faults = FaultConfig()
        for arn in arns:
            assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
    assert sorted(ran) == sorted(set(ran))


@pytest.mark.parametrize("cap", [4.0])
async def test_the_static_cap_paces_every_sagemaker_call(
    loop_emulator: EmulatorServer, sagemaker: Any, make_queue: QueueFactory, cap: float
) -> None:
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    settings = worker_settings(queue_url, sagemaker_max_rps=cap)
    async with running_worker(settings, {"echo": _echo}) as worker:
        arns = [
            (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"] for _ in "123"
        ]
        for arn in arns:
            assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
        gate = worker.sagemaker
    assert gate.rate == cap
    assert gate.calls >= 6  # a look-up and a report per step, all through the one limiter
    assert gate.wait_seconds > 0


async def start(sagemaker: Any, pipeline: str) -> str:
    return str((await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"])


async def _echo(context: CallbackContext) -> dict[str, str]:
    return {}
