"""Running the worker in-process for integration tests, against moto SQS and the emulator over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from callback_worker.config.settings import Settings
from callback_worker.worker.app import build_worker
from callback_worker.worker.clients import aws_clients
from callback_worker.worker.handler import Handler
from callback_worker.worker.worker import Worker
from tests.emulator_fixtures import callback_step, pipeline_definition
from tests.fakes import TEST_SIGNING_KEY

if TYPE_CHECKING:
    from callback_worker.worker.tracing import Tracing

ROLE_ARN = "arn:aws:iam::123456789012:role/pipeline"
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})


def worker_settings(queue_url: str, **overrides: Any) -> Settings:
    """Settings for a test worker: short polls so that stopping is quick, everything else as given."""
    values: dict[str, Any] = {
        "queue_url": queue_url,
        "handler": "echo",
        "wait_time": 1,
        "visibility_timeout": 30,
        "signing_key": TEST_SIGNING_KEY.decode(),  # shared by the workers of a test, as deploy/ ships one
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_worker(
    settings: Settings, handlers: Mapping[str, Handler], tracing: Tracing | None = None
) -> AsyncIterator[Worker]:
    """A started worker; leaving the block stops and drains it."""
    async with aws_clients(settings.concurrency) as (sqs, sagemaker):
        worker = build_worker(settings, handlers, sqs, sagemaker, tracing)
        await worker.queue.attributes()  # as the daemon's start-up check does
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await task


def one_step_definition(queue_url: str, arguments: Mapping[str, Any] | None = None, outputs: Any = None) -> str:
    """A pipeline with one callback step ``Work`` sending ``arguments`` to ``queue_url``; ``outputs`` as the
    definition lists them (``[{"OutputName": ..., "OutputType": ...}]``)."""
    step = callback_step("Work", queue_url, arguments=arguments, OutputParameters=list(outputs or []))
    return pipeline_definition([step], experiment=None)


async def create_pipeline(sagemaker: Any, definition: str, name: str | None = None) -> str:
    """Create a pipeline; returns its name."""
    name = name or f"p-{uuid.uuid4().hex[:10]}"
    await sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=ROLE_ARN)
    return name


async def wait_for_status(sagemaker: Any, arn: str, statuses: frozenset[str] = TERMINAL, within: float = 60) -> str:
    """Poll DescribePipelineExecution until the status is one of ``statuses``; returns it."""
    async with asyncio.timeout(within):
        while True:
            response = await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            status = str(response["PipelineExecutionStatus"])
            if status in statuses:
                return status
            await asyncio.sleep(0.1)


async def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible + in flight + delayed messages of a queue."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names))["Attributes"]
    return sum(int(attributes[name]) for name in names)


async def step_of(sagemaker: Any, arn: str, name: str = "Work") -> dict[str, Any]:
    """The named step of an execution, as ListPipelineExecutionSteps shows it."""
    steps = (await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn))["PipelineExecutionSteps"]
    return next(step for step in steps if step["StepName"] == name)


def outputs_of(step: Mapping[str, Any]) -> dict[str, str]:
    """A step's recorded callback outputs as a dict."""
    pairs = step.get("Metadata", {}).get("Callback", {}).get("OutputParameters", [])
    return {pair["Name"]: pair["Value"] for pair in pairs}
