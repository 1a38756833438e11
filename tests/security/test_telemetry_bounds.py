"""Telemetry is bounded, and named after a message only once SageMaker vouched for it.

Before: the delivery span was renamed ``callback <pipeline>`` as soon as the body parsed, from the pipeline name in
the message's own execution ARN — before the token was verified — and neither span names nor attribute values were
capped: a made-up ARN with a 200,000-character pipeline name gave a 200,000-character span name (and as much again
in attributes), exported as is. Logs cut every value at 1,000 characters; spans did not.

Now the span stays ``callback`` until SageMaker lists the token under its execution, every span name is cut at 256
characters (``worker.tracing.MAX_NAME_CHARS``) and every attribute value, of spans and of events, at 1,000
(``MAX_ATTRIBUTE_CHARS``, through OpenTelemetry's ``SpanLimits``). A real worker, against moto and the emulator,
exports its spans to the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from callback_worker.worker.confirm import VERIFY_GRACE, Confirmer
from callback_worker.worker.handler import CallbackContext
from callback_worker.worker.tracing import Tracing, tracing_for
from tests.integration.conftest import QueueFactory
from tests.security.test_continuation_limits import captured_body
from tests.worker_harness import (
    create_pipeline,
    one_step_definition,
    running_worker,
    wait_for_status,
    worker_settings,
)

HUGE = 200_000
MAX_NAME_CHARS = 256
MAX_ATTRIBUTE_CHARS = 1_000


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    """The daemon's own set-up (``tracing_for``: its batch processor and limits) around an in-memory exporter."""
    exporter = InMemorySpanExporter()
    tracing = tracing_for(exporter, {})
    yield tracing, exporter
    tracing.shutdown()


def finished(tracing: Tracing, exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    tracing.provider.force_flush()
    return exporter.get_finished_spans()


def values(span: ReadableSpan) -> list[str]:
    """Every string attribute value of the span and of its events."""
    found = [value for value in (span.attributes or {}).values() if isinstance(value, str)]
    for event in span.events:
        found += [value for value in (event.attributes or {}).values() if isinstance(value, str)]
    return found


def ok(context: CallbackContext) -> dict[str, str]:
    return {}


async def test_a_made_up_arn_does_not_name_or_swell_a_span(
    sagemaker: Any,
    sqs: Any,
    make_queue: QueueFactory,
    exported: tuple[Tracing, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing, exporter = exported
    # SageMaker refuses to look the ARN up (ValidationException): inconclusive, so the message would be looked at
    # again until the grace; as if the grace were over, it is kept at once for the redrive policy.
    monkeypatch.setattr(Confirmer, "age", lambda self, delivery: VERIFY_GRACE)
    _, body = await captured_body(sagemaker, sqs, make_queue)
    region_account = body["pipelineExecutionArn"].split(":pipeline/")[0]
    body["pipelineExecutionArn"] = f"{region_account}:pipeline/{'p' * HUGE}/execution/{'e' * 20_000}"
    queue_url, _ = await make_queue()
    await sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    async with running_worker(worker_settings(queue_url, handler="h"), {"h": ok}, tracing):
        while not [span for span in finished(tracing, exporter) if span.parent is None]:
            await asyncio.sleep(0.05)
    spans = finished(tracing, exporter)
    [root] = [span for span in spans if span.parent is None]
    assert root.name == "callback"  # never named after a message SageMaker did not vouch for
    assert dict(root.attributes or {})["callback.settled_as"] == "kept"
    attributes = dict(root.attributes or {})
    assert attributes["callback.pipeline_name"] == "p" * MAX_ATTRIBUTE_CHARS
    assert attributes["callback.execution_id"] == "e" * MAX_ATTRIBUTE_CHARS
    assert max(len(span.name) for span in spans) <= MAX_NAME_CHARS
    assert max(len(value) for span in spans for value in values(span)) <= MAX_ATTRIBUTE_CHARS
    assert sum(len(span.to_json()) for span in spans) < 20 * MAX_ATTRIBUTE_CHARS


async def test_a_verified_pipeline_names_the_span_within_the_cap(
    sagemaker: Any, make_queue: QueueFactory, exported: tuple[Tracing, InMemorySpanExporter]
) -> None:
    """SageMaker allows 256-character pipeline names: ``callback <name>`` is cut to 256 characters."""
    tracing, exporter = exported
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url), name="q" * 256)
    async with running_worker(worker_settings(queue_url, handler="h"), {"h": ok}, tracing):
        arn = (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"]
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
        while not [span for span in finished(tracing, exporter) if span.parent is None]:
            await asyncio.sleep(0.05)
    [root] = [span for span in finished(tracing, exporter) if span.parent is None]
    assert root.name == f"callback {pipeline}"[: MAX_NAME_CHARS - 3] + "..."
    assert dict(root.attributes or {})["callback.pipeline_name"] == pipeline
