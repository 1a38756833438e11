"""/healthz, /readyz and /metrics scraped over HTTP from a running worker."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from callback_worker.emulator.server import EmulatorServer
from callback_worker.handlers.echo import EchoHandler
from callback_worker.worker.app import build_worker
from callback_worker.worker.clients import aws_clients
from callback_worker.worker.endpoints import serve_health
from callback_worker.worker.handler import CallbackContext, Handler
from callback_worker.worker.worker import Worker
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, one_step_definition, wait_for_status, worker_settings


@asynccontextmanager
async def served(
    queue_url: str, handlers: dict[str, Handler], **settings: Any
) -> AsyncIterator[tuple[Worker, str, asyncio.Event, asyncio.Task[None]]]:
    config = worker_settings(queue_url, **settings)
    async with aws_clients(config.concurrency) as (sqs, sagemaker):
        worker = build_worker(config, handlers, sqs, sagemaker)
        async with serve_health(worker, "127.0.0.1", 0) as port:
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                yield worker, f"http://127.0.0.1:{port}", stop, task
            finally:
                stop.set()
                await task


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    async with asyncio.timeout(10):
        while (await get(session, f"{base}/readyz"))[0] != 200:
            await asyncio.sleep(0.05)


async def test_metrics_follow_prometheus_conventions_and_count_what_happened(
    sagemaker: Any, make_queue: QueueFactory
) -> None:
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"n": 1}))
    async with served(queue_url, {"echo": EchoHandler()}) as (worker, base, _, _), aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        assert (await get(session, f"{base}/healthz"))[0] == 200
        arns = [
            (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"] for _ in range(3)
        ]
        for arn in arns:
            assert await wait_for_status(sagemaker, arn) == "Succeeded"
        async with asyncio.timeout(10):  # reported, then deleted: let the deletes finish
            while worker.tasks:
                await asyncio.sleep(0.05)
        status, text = await get(session, f"{base}/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("callback_worker_messages_received_total", ())] == 3
    assert samples[("callback_worker_callbacks_reported_total", (("outcome", "success"), ("result", "accepted")))] == 3
    assert samples[("callback_worker_handler_duration_seconds_count", (("handler", "echo"),))] == 3
    assert samples[("callback_worker_in_flight_messages", ())] == 0
    assert samples[("callback_worker_last_successful_poll_timestamp_seconds", ())] > 1_700_000_000
    assert any(name == "callback_worker_build_info" for name, _ in samples)
    for family in families.values():
        assert family.name.startswith("callback_worker_")
        if family.type == "counter":
            assert all(sample.name.endswith(("_total", "_created")) for sample in family.samples)
        for sample in family.samples:
            for value in sample.labels.values():
                assert "arn:" not in value
                assert "://" not in value
    assert families["callback_worker_handler_duration_seconds"].type == "histogram"
    exposed = {name + ("_total" if family.type == "counter" else "") for name, family in families.items()}
    assert documented_metrics() == exposed


def documented_metrics() -> set[str]:
    """Metric names in deploy/README.md's reference table."""
    text = (Path(__file__).parents[2] / "deploy" / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(callback_worker_[a-z_]+)", text, flags=re.MULTILINE))


async def test_readyz_is_false_while_draining_and_healthz_stays_true(
    make_queue: QueueFactory, sqs: Any, loop_emulator: EmulatorServer
) -> None:
    started = asyncio.Event()

    async def slow(context: CallbackContext) -> dict[str, str]:
        started.set()
        await asyncio.sleep(2)
        return {}

    queue_url, _ = await make_queue()
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/x"
    body = json.dumps({"token": "AbCdEfGh12", "pipelineExecutionArn": arn, "arguments": {}})
    await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    handlers: dict[str, Handler] = {"slow": slow}
    served_worker = served(queue_url, handlers, handler="slow", shutdown_grace=10, verify_tokens=False)
    async with served_worker as (_, base, stop, task), aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        await asyncio.wait_for(started.wait(), timeout=10)
        stop.set()
        await asyncio.sleep(0.2)
        assert not task.done()
        ready_status, ready_body = await get(session, f"{base}/readyz")
        alive_status, _ = await get(session, f"{base}/healthz")
        await task
    assert ready_status == 503
    assert '"draining": true' in ready_body
    assert alive_status == 200


async def test_a_handler_blocking_the_event_loop_shows_in_the_lag_histogram(
    make_queue: QueueFactory, sqs: Any, loop_emulator: EmulatorServer
) -> None:
    async def blocking(context: CallbackContext) -> dict[str, str]:
        time.sleep(1.5)  # noqa: ASYNC251 - a sync call inside an async handler: what the histogram is for
        return {}

    queue_url, _ = await make_queue()
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/x"
    body = json.dumps({"token": "AbCdEfGh12", "pipelineExecutionArn": arn, "arguments": {}})
    served_worker = served(queue_url, {"blocking": blocking}, handler="blocking", verify_tokens=False)
    async with served_worker as (worker, base, _, _), aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        async with asyncio.timeout(20):
            while worker.loop_lag.worst < 1.0:
                await asyncio.sleep(0.1)
        _, text = await get(session, f"{base}/metrics")
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "callback_worker_event_loop_lag_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    assert buckets["+Inf"] > buckets["0.5"]  # at least one sample was more than half a second late
