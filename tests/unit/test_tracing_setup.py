"""Tracing is set up from the standard OTEL_* environment only, and costs nothing when it is off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from callback_worker.worker.app import tracing_from_environment
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.tracing import Tracing


@pytest.mark.parametrize("value", [None, "", "none", " NONE "])
def test_no_exporter_means_no_tracing(value: str | None) -> None:
    environment = {} if value is None else {"OTEL_TRACES_EXPORTER": value}
    assert tracing_from_environment(environment) is None


def test_the_console_exporter_traces() -> None:
    tracing = tracing_from_environment({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "svc"})
    assert isinstance(tracing, Tracing)
    assert tracing.provider.resource.attributes["service.name"] == "svc"
    tracing.shutdown()


def test_an_exporter_this_worker_lacks_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        tracing_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_with_tracing_off_opentelemetry_is_never_imported() -> None:
    code = (
        "import sys; from callback_worker.worker.app import tracing_from_environment; "
        "import callback_worker.handlers.http, callback_worker.handlers.command; "
        "from callback_worker.worker.logs import configure_logging; configure_logging(); "
        "from callback_worker.worker.tracecontext import trace_headers; "
        "assert tracing_from_environment({}) is None and trace_headers() == {}; "
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_the_otlp_exporter_reads_its_endpoint_from_the_environment() -> None:
    tracing = tracing_from_environment({"OTEL_TRACES_EXPORTER": "otlp"})
    assert isinstance(tracing, Tracing)
    tracing.shutdown()  # nothing was recorded: nothing is sent
