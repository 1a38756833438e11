"""OpenTelemetry tracing of a real worker against moto and the emulator, exported to the SDK's in-memory exporter:
the span tree of one callback, its attributes, the trace context a handler sees, and no token anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from callback_worker.worker.events import DeliveryStarted
from callback_worker.worker.handler import CallbackContext, Fail
from callback_worker.worker.tracecontext import trace_headers
from callback_worker.worker.tracing import Tracing
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, one_step_definition, running_worker, wait_for_status, worker_settings


class Traced:
    """Answers with the trace context it was called in (what ``http`` and ``command`` pass on)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.tokens: list[str] = []

    async def __call__(self, context: CallbackContext) -> dict[str, str]:
        self.headers.append(trace_headers())
        self.tokens.append(context.token)
        if context.arguments.get("fail"):
            raise Fail("asked to fail")
        if context.arguments.get("crash"):
            raise RuntimeError(f"upstream rejected callback {context.token}")
        return {"seen": "yes"}


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    yield tracing, exporter
    tracing.shutdown()


async def run_one(sagemaker: Any, queue_url: str, tracing: Tracing, arguments: dict[str, Any]) -> tuple[Traced, str]:
    handler = Traced()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"handler": "traced", **arguments}))
    async with running_worker(worker_settings(queue_url, handler="traced"), {"traced": handler}, tracing) as worker:
        arn = (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"]
        await wait_for_status(sagemaker, arn)
        while worker.tasks:  # reported; let the delete finish
            await asyncio.sleep(0.05)
    return handler, pipeline


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


async def test_one_callback_is_one_trace_with_the_handler_and_aws_calls_inside(
    sagemaker: Any, make_queue: QueueFactory, exported: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = exported
    queue_url, _ = await make_queue()
    handler, pipeline = await run_one(sagemaker, queue_url, tracing, {})
    spans = exporter.get_finished_spans()
    [root] = by_name(spans, "callback ")
    assert root.name == f"callback {pipeline}"
    assert root.kind is SpanKind.CONSUMER
    assert root.parent is None
    attributes = dict(root.attributes or {})
    assert attributes["callback.pipeline_name"] == pipeline
    assert attributes["callback.step_name"] == "Work"
    assert attributes["callback.status"] == "Executing"
    assert attributes["callback.attempt"] == 1
    assert attributes["callback.receive_count"] == 1
    assert attributes["callback.outcome"] == "success"
    assert attributes["callback.report_result"] == "accepted"
    assert attributes["callback.settled_as"] == "answered"
    children = {span.name: span for span in spans if span.parent is not None}
    assert set(children) >= {
        "handler traced",
        "SageMaker.ListPipelineExecutionSteps",
        "SageMaker.SendPipelineExecutionStepSuccess",
        "SQS.DeleteMessageBatch",
    }
    for span in children.values():
        assert span.context is not None
        assert root.context is not None
        assert span.context.trace_id == root.context.trace_id
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
    assert children["SageMaker.SendPipelineExecutionStepSuccess"].kind is SpanKind.CLIENT
    assert children["handler traced"].attributes == {"callback.handler": "traced", "callback.attempt": 1}
    assert not by_name(spans, "SQS.ReceiveMessage")  # long polls are not traced
    # The handler ran inside its own span, and a call out would carry that trace onwards.
    [headers] = handler.headers
    handler_span = children["handler traced"].context
    assert handler_span is not None
    assert headers["traceparent"].startswith(f"00-{handler_span.trace_id:032x}-{handler_span.span_id:016x}-")
    # No token in any span: names, attributes, events.
    dumped = "".join(span.to_json() for span in spans)
    assert handler.tokens[0] not in dumped


async def test_a_failing_handler_is_a_spoken_result_not_a_span_error(
    sagemaker: Any, make_queue: QueueFactory, exported: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = exported
    queue_url, _ = await make_queue()
    handler, _ = await run_one(sagemaker, queue_url, tracing, {"fail": True})
    spans = exporter.get_finished_spans()
    [handler_span] = by_name(spans, "handler ")
    assert handler_span.status.status_code is StatusCode.UNSET
    assert dict(handler_span.attributes or {})["callback.handler_result"] == "fail"
    [root] = by_name(spans, "callback ")
    assert dict(root.attributes or {})["callback.outcome"] == "failure"
    assert handler.tokens[0] not in json.dumps([span.to_json() for span in spans])


def test_without_a_current_span_handlers_send_no_trace_context() -> None:
    assert trace_headers() == {}


async def test_a_crash_is_an_error_span_without_the_exceptions_text(
    sagemaker: Any, make_queue: QueueFactory, exported: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = exported
    queue_url, _ = await make_queue()
    handler, _ = await run_one(sagemaker, queue_url, tracing, {"crash": True})
    spans = exporter.get_finished_spans()
    handler_spans = by_name(spans, "handler ")
    assert handler_spans
    assert all(span.status.status_code is StatusCode.ERROR for span in handler_spans)
    assert {event.name for span in handler_spans for event in span.events} == {"exception"}
    assert handler.tokens[0] not in "".join(span.to_json() for span in spans)  # the message held the token


class Model:
    """What botocore's before-call event passes as ``model``: the operation and its service."""

    name = "SendPipelineExecutionStepSuccess"

    class service_model:
        service_id = "SageMaker"


def test_a_call_cut_short_ends_with_the_span_it_was_made_under(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    context: dict[str, Any] = {}
    delivery = tracing.span(DeliveryStarted("m-1", 1))
    assert delivery is not None
    with delivery:
        tracing._call_started(Model(), context)  # no after-call event follows: the call was cancelled
    [call] = by_name(exporter.get_finished_spans(), "SageMaker.")
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "the delivery ended while the call was out"
