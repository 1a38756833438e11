"""worker/report.py Reporter over HTTP: how many reports it keeps in flight at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from callback_worker.emulator.faults import FaultConfig
from callback_worker.emulator.server import EmulatorServer
from callback_worker.worker.outcome import success
from callback_worker.worker.report import Reporter, ReportResult
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, one_step_definition, wait_for_status


class CountingClient:
    """The real SageMaker client, counting how many Send calls are open at once."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.open = 0
        self.most_open = 0

    async def send_pipeline_execution_step_success(self, **request: Any) -> Any:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            return await self.client.send_pipeline_execution_step_success(**request)
        finally:
            self.open -= 1


async def callback_tokens(sagemaker: Any, sqs: Any, queue_url: str, count: int) -> tuple[list[str], list[str]]:
    """Start ``count`` one-step executions; their ARNs and the callback tokens their messages carry."""
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    arns = [
        (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"] for _ in range(count)
    ]
    tokens: list[str] = []
    async with asyncio.timeout(30):
        while len(tokens) < count:
            response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            tokens.extend(json.loads(message["Body"])["token"] for message in response.get("Messages", []))
    return arns, tokens


async def test_reports_beyond_the_limit_wait_their_turn(
    loop_emulator: EmulatorServer, sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    queue_url, _ = await make_queue()
    arns, tokens = await callback_tokens(sagemaker, sqs, queue_url, 8)
    loop_emulator.faults = FaultConfig().with_operation("SendPipelineExecutionStepSuccess", latency=0.2)
    client = CountingClient(sagemaker)
    reporter = Reporter(client, max_in_flight=3)  # type: ignore[arg-type]  # the real client, counted

    results = await asyncio.gather(*(reporter.report(token, success({})) for token in tokens))

    assert results == [ReportResult.ACCEPTED] * 8
    assert client.most_open == 3
    for arn in arns:
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
