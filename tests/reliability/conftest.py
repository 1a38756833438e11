"""Fixtures of the reliability tier: the scale, the SQS backends, the audited emulator, and the figures report.

Every module here marks its tests ``reliability`` (registered below as well, so that ``--strict-markers`` accepts
it before pyproject lists it) and gives them the scale's timeout. The figures each scenario measured are printed at
the end of the run and, with ``RELIABILITY_REPORT=path``, written there as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callback_worker.emulator import FaultConfig
from tests.reliability.audit import AuditedEmulator
from tests.reliability.queues import LocalStackUnavailable, SqsBackend, localstack
from tests.reliability.scale import Scale, current_scale, current_seed

LOCALSTACK_ENV = "RELIABILITY_LOCALSTACK"
REPORT_ENV = "RELIABILITY_REPORT"
_FIGURES: dict[str, dict[str, Any]] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: reliability tier (replicas, kills, faults, fuzzing); size from RELIABILITY_SCALE"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section(f"reliability figures (scale {current_scale().name}, seed {current_seed()})")
    for scenario, numbers in _FIGURES.items():
        shown = ", ".join(f"{key}={value}" for key, value in numbers.items())
        terminalreporter.write_line(f"{scenario}: {shown}")
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        report = {"scale": current_scale().name, "seed": current_seed(), "scenarios": _FIGURES}
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"written to {path}")


Recorder = Callable[..., None]


def keep(scenario: str, **numbers: Any) -> None:
    """Keep ``numbers`` under ``scenario`` for the end-of-run report."""
    _FIGURES.setdefault(scenario, {}).update(numbers)


def count(scenario: str, what: str) -> None:
    """Add one to the figure ``what`` of ``scenario`` (for hypothesis tests, which cannot take ``record``)."""
    figures = _FIGURES.setdefault(scenario, {})
    figures[what] = int(figures.get(what, 0)) + 1


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Recorder:
    """``record(**figures)``: keep this test's figures for the end-of-run report."""

    def keep_this(**numbers: Any) -> None:
        keep(request.node.nodeid.split("::", 1)[-1], **numbers)

    return keep_this


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current_scale()


@pytest.fixture(scope="session")
def localstack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """LocalStack SQS on a free port of 127.0.0.1, started once per session (skips when it cannot run here)."""
    mode = os.environ.get(LOCALSTACK_ENV, "auto").strip().lower()
    if mode == "off":
        pytest.skip(f"{LOCALSTACK_ENV}=off")
    try:
        with localstack(tmp_path_factory.mktemp("localstack"), install=mode == "install") as endpoint:
            yield endpoint
    except LocalStackUnavailable as exc:
        pytest.skip(f"LocalStack unavailable: {exc} (set {LOCALSTACK_ENV}=install to install it, ~2 min)")


@pytest.fixture(params=["moto", "localstack"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SqsBackend:
    """The SQS server of this run; ``AWS_ENDPOINT_URL_SQS`` of the test process (the emulator's sender) points at it."""
    endpoint = str(request.getfixturevalue("moto_server" if request.param == "moto" else "localstack_endpoint"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
    return SqsBackend(request.param, endpoint)


EmulatorFactory = Callable[..., AuditedEmulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start audited emulators (``faults=FaultConfig(...)``); their messages go to ``AWS_ENDPOINT_URL_SQS``."""
    started: list[AuditedEmulator] = []

    def start(faults: FaultConfig | None = None) -> AuditedEmulator:
        server = AuditedEmulator("127.0.0.1", 0, faults=faults)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
