"""The current trace's context as W3C Trace Context headers, for handlers that call out (``http``, ``command``).

Empty unless tracing is on (:mod:`worker.tracing` imported OpenTelemetry): without the ``otel`` extra, or with no
exporter configured, handlers send nothing extra and nothing is imported.
"""

from __future__ import annotations

import sys


def trace_headers() -> dict[str, str]:
    """``{"traceparent": ..., "tracestate": ...}`` for the span current in this task, or ``{}``."""
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry import propagate, trace  # noqa: PLC0415 - only once tracing has loaded it

    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {name: value for name, value in carrier.items() if name in ("traceparent", "tracestate")}
