"""OpenTelemetry tracing of deliveries, a listener of the daemon's events (the ``otel`` extra).

Imported only when tracing is on (:func:`worker.app.tracing_from_environment`: the extra installed and
``OTEL_TRACES_EXPORTER`` set to ``otlp`` or ``console``); without it the daemon pays nothing. Everything else comes
from the standard ``OTEL_*`` environment, read by the SDK: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` (and its argument), ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the exporter's other variables.

The spans of one delivery:

- ``callback <pipeline>`` (kind CONSUMER) from receipt to the end of the delivery, with the pipeline name, execution
  id, step name (when SageMaker named it), handler, attempt, message status, receive count, the outcome reported and
  how the delivery settled; events for each lease renewal and each failed AWS call that is retried. It is named
  ``callback`` until SageMaker has listed the message's token under its execution (:class:`StepIdentified`): a name
  taken from an unverified message would let whoever can send to the queue choose it;
- ``handler <name>`` around the handler call (an unexpected exception sets an error status and records its type,
  never its text; ``Fail`` and ``Retry`` are how a handler speaks, not errors);
- one span per SQS or SageMaker call made inside the delivery (the daemon's aiobotocore clients); a call cut short
  by a shutdown ends, as an error, with the span it was made under; the long polls between deliveries are not
  traced.

No span, attribute or event ever carries a callback token: the events it listens to hold none, and AWS call spans
record only the service and operation. Nothing a message carries makes telemetry large: span names are cut at
:data:`MAX_NAME_CHARS` here, and attribute values (of spans and events) at :data:`MAX_ATTRIBUTE_CHARS` by
OpenTelemetry's own :class:`~opentelemetry.sdk.trace.SpanLimits`, which :func:`tracing_for` sets (the
``OTEL_*_ATTRIBUTE_VALUE_LENGTH_LIMIT`` variables do not change it); the SDK's count limits stay as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from callback_worker.worker.events import (
    CallFailed,
    DeliveryEnded,
    DeliveryIdentified,
    DeliveryStarted,
    Event,
    HandlerCall,
    LeaseCall,
    Reported,
    StepIdentified,
)
from callback_worker.worker.handler import Fail, Retry

if TYPE_CHECKING:
    from aiobotocore.client import AioBaseClient

#: The instrumentation scope of every span.
SCOPE = "sagemaker-callback-worker"
#: Keys under which an AWS call's span travels in botocore's per-request context.
_SPAN_KEY = "callback_worker_span"
#: Characters of a span name (or a status description) at most; a longer one is cut, ending in ``...``.
MAX_NAME_CHARS = 256
#: Characters of an attribute value at most (:func:`span_limits`).
MAX_ATTRIBUTE_CHARS = 1_000
_CUT = "..."


def capped(name: str) -> str:
    """``name``, or its start and ``...``: :data:`MAX_NAME_CHARS` characters in all."""
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - len(_CUT)] + _CUT


def span_limits() -> SpanLimits:
    """The SDK's limits with every attribute value (of spans, events and links) cut at :data:`MAX_ATTRIBUTE_CHARS`."""
    return SpanLimits(max_attribute_length=MAX_ATTRIBUTE_CHARS, max_span_attribute_length=MAX_ATTRIBUTE_CHARS)


class Tracing:
    """The tracing listener of one worker (a span listener of :class:`worker.events.Events`)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE)
        self._deliveries: dict[str, Span] = {}
        self._calls: dict[int, set[Span]] = {}
        """Open AWS-call spans by their parent's span id: a call cancelled mid-flight (a shutdown) sends neither
        after-call event, so its span is ended when its parent ends."""
        self._unverified: dict[int, str | None] = {}
        """Open delivery spans by span id: the pipeline each is named after once its token is verified."""

    # -- events -------------------------------------------------------------------------------------------------------

    def span(self, event: Event) -> contextlib.AbstractContextManager[object] | None:
        if isinstance(event, DeliveryStarted):
            return self._delivery(event)
        if isinstance(event, HandlerCall):
            return self._handler(event)
        return None

    def __call__(self, event: Event) -> None:
        match event:
            case DeliveryIdentified():
                self._identified(event)
            case StepIdentified(step_name=step):
                self._verified(step)
            case Reported(outcome=outcome, result=result):
                trace.get_current_span().set_attributes({"callback.outcome": outcome, "callback.report_result": result})
            case CallFailed(service=service, operation=operation, code=code):
                trace.get_current_span().add_event(
                    "retry", {"aws.service": service, "purpose": operation, "code": code}
                )
            case LeaseCall(renewed=renewed, retried=retried):
                self._lease_call(renewed, retried)
            case DeliveryEnded(message_id=message_id, phase=phase):
                if message_id in self._deliveries:
                    self._deliveries.pop(message_id).set_attribute("callback.settled_as", phase or "interrupted")
            case _:
                pass

    @contextlib.contextmanager
    def _delivery(self, event: DeliveryStarted) -> Iterator[None]:
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "process",
            "messaging.message.id": event.message_id,
            "callback.receive_count": event.receive_count,
        }
        with self.tracer.start_as_current_span("callback", kind=SpanKind.CONSUMER, attributes=attributes) as span:
            self._deliveries[event.message_id] = span
            self._unverified[span.get_span_context().span_id] = None
            try:
                yield
            finally:
                self._deliveries.pop(event.message_id, None)
                self._unverified.pop(span.get_span_context().span_id, None)
                self._end_calls_under(span, "the delivery ended while the call was out")

    @contextlib.contextmanager
    def _handler(self, event: HandlerCall) -> Iterator[None]:
        attributes: dict[str, AttributeValue] = {"callback.handler": event.handler, "callback.attempt": event.attempt}
        with self.tracer.start_as_current_span(
            capped(f"handler {event.handler}"),
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except (Fail, Retry) as spoken:
                span.set_attribute("callback.handler_result", type(spoken).__name__.lower())
                raise
            except Exception as exc:
                # The exception's type only: its text and traceback may hold the token (the worker scrubs the
                # text it sends SageMaker and logs; a span has no such filter).
                span.add_event("exception", {"exception.type": type(exc).__name__})
                span.set_status(Status(StatusCode.ERROR, capped(type(exc).__name__)))
                raise
            finally:
                self._end_calls_under(span, "the handler ended while the call was out")

    def _identified(self, event: DeliveryIdentified) -> None:
        """The body parsed: its fields become attributes (capped); the span is named once the token is verified."""
        span = trace.get_current_span()
        if span.get_span_context().span_id in self._unverified:
            self._unverified[span.get_span_context().span_id] = event.pipeline
        span.set_attributes(
            {
                "callback.pipeline_name": event.pipeline,
                "callback.execution_id": event.execution_id,
                "callback.status": event.status,
                "callback.attempt": event.attempt,
                "callback.link": event.link,
            }
        )

    def _verified(self, step: str) -> None:
        """SageMaker listed the token under the message's execution: its pipeline names the delivery's span."""
        span = trace.get_current_span()
        span.set_attribute("callback.step_name", step)
        pipeline = self._unverified.pop(span.get_span_context().span_id, None)
        if pipeline is not None:
            span.update_name(capped(f"callback {pipeline}"))

    def _lease_call(self, renewed: tuple[str, ...], retried: tuple[str, ...]) -> None:
        for name, message_ids in (("lease renewed", renewed), ("lease renewal retried", retried)):
            for message_id in message_ids:
                span = self._deliveries.get(message_id)
                if span is not None:
                    span.add_event(name)

    # -- AWS calls ----------------------------------------------------------------------------------------------------

    def instrument(self, client: AioBaseClient) -> None:
        """Trace this client's calls made inside a delivery: a span per call, child of the current one."""
        events = client.meta.events
        events.register("before-call.*.*", self._call_started)
        events.register("after-call.*.*", self._call_ended)
        events.register("after-call-error.*.*", self._call_failed)

    def _call_started(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        parent = trace.get_current_span().get_span_context()
        if not parent.is_valid:
            return  # outside a delivery (a long poll, start-up): not traced
        service = model.service_model.service_id
        span = self.tracer.start_span(
            capped(f"{service}.{model.name}"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "aws-api", "rpc.service": str(service), "rpc.method": model.name},
        )
        context[_SPAN_KEY] = (parent.span_id, span)
        self._calls.setdefault(parent.span_id, set()).add(span)

    def _call_ended(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        span = self._take(context)
        if span is None:
            return
        status = int(getattr(http_response, "status_code", 0))
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        span.end()

    def _call_failed(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        span = self._take(context)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, capped(type(exception).__name__)))
            span.end()

    def _take(self, context: dict[str, Any]) -> Span | None:
        """The span of the call ``context`` belongs to, no longer open."""
        taken: tuple[int, Span] | None = context.pop(_SPAN_KEY, None)
        if taken is None:
            return None
        parent, span = taken
        open_calls = self._calls.get(parent)
        if open_calls is not None:
            open_calls.discard(span)
            if not open_calls:
                del self._calls[parent]
        return span

    def _end_calls_under(self, parent: Span, reason: str) -> None:
        for span in self._calls.pop(parent.get_span_context().span_id, ()):
            span.set_status(Status(StatusCode.ERROR, reason))
            span.end()

    def shutdown(self) -> None:
        """Export what is left (at exit)."""
        self.provider.shutdown()


def exporter_for(name: str) -> SpanExporter:
    """The exporter ``OTEL_TRACES_EXPORTER`` names (``otlp``: over HTTP, to ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: this worker exports traces with 'otlp' or 'console' (or 'none')")


def tracing_for(exporter: SpanExporter, environment: Mapping[str, str] = os.environ) -> Tracing:
    """A :class:`Tracing` exporting in batches through ``exporter``; resource and sampler from the environment."""
    service = environment.get("OTEL_SERVICE_NAME") or "sagemaker-callback-worker"
    provider = TracerProvider(resource=Resource.create({"service.name": service}), span_limits=span_limits())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)
