"""Prometheus metrics of one worker, in a registry of its own.

Counters and histograms listen to the worker's events (:mod:`worker.events`); the gauges (in flight, readiness,
last poll) are read at scrape time.
No label ever carries a token, an ARN or a queue URL: handler names are the registered ones, error classes are few.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callback_worker.worker.events import (
    CallFailed,
    Event,
    HandlerFinished,
    LeaseCall,
    LoopLagSampled,
    Noted,
    Reported,
    ReportEnded,
    ReportStarted,
    StepLookup,
)
from callback_worker.worker.worker import Worker

# `_created` series double the output and mean nothing to alerting here.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "callback_worker"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400, 43_200)
REPORT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 43_200)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Report error codes grouped into a few classes, so the label's cardinality stays small.
ERROR_CLASSES = {
    "ThrottlingException": "throttling",
    "Throttling": "throttling",
    "ConflictException": "conflict",
    "ResourceNotFound": "not_found",
    "ValidationException": "validation",
    "ResourceLimitExceeded": "limit",
    "InternalFailure": "server",
    "ServiceUnavailable": "server",
}
#: Counter name → (what a :class:`worker.events.Noted` event names, help text).
NOTED = {
    "messages_received": ("received", "Messages received from SQS."),
    "malformed_messages": ("malformed", "Messages whose body was not a usable callback message."),
    "continuations": ("continued", "Retry continuations re-queued."),
    "handler_crashes": ("crashed", "Handler calls that raised an unexpected exception and were retried."),
    "handlers_stopped": ("stopped", "Deliveries that ended in a stop (a Stopping message, or a step found stopped)."),
    "copies_joined": ("joined", "Deliveries of a token already in flight here, settled with the one in flight."),
    "steps_already_done": ("already_done", "Deliveries or reports whose step already had an outcome."),
    "unauthenticated_continuations": (
        "unauthenticated",
        "Messages whose continuation field was set aside (not sealed by a key of this worker), run as fresh.",
    ),
}


def package_version() -> str:
    try:
        return version("sagemaker-callback-worker")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


def error_class(code: str) -> str:
    """The metric label for an error code: a handful of classes, never the raw text."""
    if code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    if "Connect" in code or "Timeout" in code or code.endswith(("ClientError", "OSError")):
        return "connection"
    return "other"


class WorkerCollector(Collector):
    """Reads a worker's gauges at scrape time."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        worker, health = self.worker, self.worker.health
        yield _gauge("in_flight_messages", "Messages being handled now.", len(worker.tasks))
        yield _gauge("concurrency_limit", "Messages that may be handled at once.", worker.slots.capacity)
        yield _gauge(
            "slots_in_use",
            "Handler slots taken now (a message whose outcome only waits for SageMaker holds its lease, not a slot).",
            worker.slots.in_use,
        )
        yield _gauge(
            "last_successful_poll_timestamp_seconds",
            "Unix time of the last receive that SQS answered.",
            health.last_poll_wall,
        )
        yield _gauge("ready", "1 when the worker is ready to receive, else 0.", 1 if health.is_ready() else 0)
        yield from _sagemaker_metrics(worker)


def _sagemaker_metrics(worker: Worker) -> Iterator[Metric]:
    """The SageMaker rate limiter and the door all SageMaker calls pass (read at scrape time)."""
    gate = worker.sagemaker
    yield _counter("sagemaker_calls", "SageMaker call attempts made (every retry counted).", gate.calls)
    yield _counter("sagemaker_calls_throttled", "SageMaker calls answered with a throttling error.", gate.throttled)
    yield _gauge(
        "sagemaker_rate_limit",
        "SageMaker calls per second the adaptive limiter allows now (+Inf while unlimited).",
        gate.rate,
    )
    yield _gauge("sagemaker_calls_waiting", "SageMaker calls waiting for the rate limiter now.", gate.limiter.waiting)
    yield _counter(
        "sagemaker_rate_limit_wait_seconds", "Time SageMaker calls spent waiting for the limiter.", gate.wait_seconds
    )
    yield _gauge("sagemaker_reachable", "1 when SageMaker answered the last call, else 0.", int(gate.reachable))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", text, value=value)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", text, value=value)


class Metrics:
    """The worker's metrics registry. Counters and histograms follow the worker's events (it listens); gauges are read
    at scrape time."""

    def __init__(self, worker: Worker) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(WorkerCollector(worker))
        self._noted = {
            what: Counter(f"{PREFIX}_{name}", text, registry=self.registry) for name, (what, text) in NOTED.items()
        }
        self.reports = Counter(
            f"{PREFIX}_callbacks_reported",
            "Outcomes sent to SageMaker, by outcome and result.",
            ["outcome", "result"],
            registry=self.registry,
        )
        self.report_errors = Counter(
            f"{PREFIX}_report_errors",
            "Errors from SageMaker report calls, by class.",
            ["error_class"],
            registry=self.registry,
        )
        self.lease_renewals = Counter(
            f"{PREFIX}_visibility_extensions", "Message leases extended.", registry=self.registry
        )
        self.lease_retries = Counter(
            f"{PREFIX}_visibility_extension_retries",
            "Renewal calls (or entries) that failed and were retried within their round.",
            registry=self.registry,
        )
        self.lease_calls = Counter(
            f"{PREFIX}_visibility_extension_calls", "ChangeMessageVisibilityBatch calls made.", registry=self.registry
        )
        self.step_lookups = Counter(
            f"{PREFIX}_sagemaker_step_lookups",
            "ListPipelineExecutionSteps and DescribePipelineExecution calls (token verification, step context).",
            registry=self.registry,
        )
        self._add_histograms()
        build = GaugeMetricFamily(
            f"{PREFIX}_build_info", "Version of the worker and of Python.", labels=["version", "python"]
        )
        build.add_metric([package_version(), platform.python_version()], 1)
        self.registry.register(_Static(build))
        self.started = time.time()
        self._listen()
        worker.events.subscribe(self)

    def _add_histograms(self) -> None:
        self.report_duration = Histogram(
            f"{PREFIX}_report_duration_seconds",
            "Time from an outcome's decision to SageMaker's answer: rate-limiter waits and retries included.",
            buckets=REPORT_BUCKETS,
            registry=self.registry,
        )
        self.reports_pending = Gauge(
            f"{PREFIX}_reports_pending",
            "Outcomes decided and not yet accepted by SageMaker (waiting for the limiter, retrying, or in flight).",
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            f"{PREFIX}_handler_duration_seconds",
            "Time handlers took, by handler.",
            ["handler"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop ran what was due, sampled twice a second.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

    def __call__(self, event: Event) -> None:
        """Count one event."""
        count = self._counters.get(type(event))
        if count is not None:
            count(event)

    def _listen(self) -> None:
        """What each event type does to the metrics."""
        self._counters: dict[type[Event], Callable[[Any], None]] = {
            Noted: self._noted_event,
            Reported: lambda event: self.reports.labels(event.outcome, event.result).inc(),
            CallFailed: self._call_failed,
            LeaseCall: self._lease_call,
            StepLookup: lambda _: self.step_lookups.inc(),
            HandlerFinished: lambda event: self.handler_duration.labels(event.handler).observe(event.seconds),
            LoopLagSampled: lambda event: self.loop_lag.observe(event.seconds),
            ReportStarted: lambda _: self.reports_pending.inc(),
            ReportEnded: self._report_ended,
        }

    def _noted_event(self, event: Noted) -> None:
        if event.what in self._noted:
            self._noted[event.what].inc()

    def _call_failed(self, event: CallFailed) -> None:
        if event.service == "sagemaker" and event.operation == "report":
            self.report_errors.labels(error_class(event.code)).inc()

    def _lease_call(self, event: LeaseCall) -> None:
        self.lease_calls.inc()
        self.lease_renewals.inc(len(event.renewed))
        if event.retried:
            self.lease_retries.inc()

    def _report_ended(self, event: ReportEnded) -> None:
        self.reports_pending.dec()
        if event.answered:
            self.report_duration.observe(event.seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _Static(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric
