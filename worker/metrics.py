"""Prometheus metrics of one worker, in a registry of its own.

Counters and histograms listen to the worker's events (:mod:`worker.events`); the gauges (in flight, readiness,
last poll) are read at scrape time.
No label ever carries a token, an ARN or a queue URL: handler names are the registered ones, error classes are few.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.events import CallFailed, Event, HandlerFinished, LeaseCall, LoopLagSampled, Noted, Reported, StepLookup
from worker.worker import Worker

# `_created` series double the output and mean nothing to alerting here.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "callback_worker"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400, 43_200)
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
            "last_successful_poll_timestamp_seconds",
            "Unix time of the last receive that SQS answered.",
            health.last_poll_wall,
        )
        yield _gauge("ready", "1 when the worker is ready to receive, else 0.", 1 if health.is_ready() else 0)


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
        worker.events.subscribe(self)

    def _add_histograms(self) -> None:
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
        match event:
            case Noted(what=what) if what in self._noted:
                self._noted[what].inc()
            case Reported(outcome=outcome, result=result):
                self.reports.labels(outcome, result).inc()
            case CallFailed(service="sagemaker", operation="report", code=code):
                self.report_errors.labels(error_class(code)).inc()
            case LeaseCall(renewed=renewed, retried=retried):
                self.lease_calls.inc()
                self.lease_renewals.inc(len(renewed))
                if retried:
                    self.lease_retries.inc()
            case StepLookup():
                self.step_lookups.inc()
            case HandlerFinished(handler=handler, seconds=seconds):
                self.handler_duration.labels(handler).observe(seconds)
            case LoopLagSampled(seconds=seconds):
                self.loop_lag.observe(seconds)
            case _:
                pass

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _Static(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric
