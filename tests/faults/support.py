"""Helpers shared by the fault scenarios: pipelines to start, and handlers that record what they were asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callback_worker.worker.handler import CallbackContext, JSONValue, Retry
from tests.worker_harness import create_pipeline, one_step_definition


async def start_one(sagemaker: Any, queue_url: str) -> str:
    """Create a one-step callback pipeline on ``queue_url`` and start it; returns the execution ARN."""
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    return str((await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"])


async def captured_body(sagemaker: Any, sqs: Any, capture_url: str) -> str:
    """Start a one-step callback pipeline on ``capture_url``, a queue no worker reads, and return the Executing
    message SageMaker sent there (a real token, for the test to send on as it likes)."""
    await start_one(sagemaker, capture_url)
    body = (await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=10))["Messages"][0]["Body"]
    assert json.loads(body)["status"] == "Executing"
    return str(body)


@dataclass
class Chain:
    """A handler that asks to be called again ``links`` times (state 1, 2, …, ``delay`` seconds apart), then
    succeeds; records the state of every call and every stop hook."""

    links: int = 3
    delay: float = 0.0
    calls: list[JSONValue] = field(default_factory=list)
    stops: list[JSONValue] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, context: CallbackContext) -> Mapping[str, str] | Retry:
        self.calls.append(context.state)
        self.called.set()
        step = context.state if isinstance(context.state, int) else 0
        if step < self.links:
            return Retry(self.delay, state=step + 1)
        return {}

    async def on_stop(self, context: CallbackContext) -> None:
        self.stops.append(context.state)


async def until(condition: Any, within: float = 30.0, every: float = 0.1) -> None:
    """Poll ``condition()`` (sync) until it is true, at most ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(every)
