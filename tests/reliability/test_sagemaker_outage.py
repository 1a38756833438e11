"""Scenario: SageMaker goes away for minutes while callbacks keep arriving, and comes back.

Three replicas with default settings (health port on) answer through :class:`~tests.reliability.outage.OutageProxy`
in front of the audited emulator. A first batch of executions starts; once their (slow) handlers run, SageMaker
goes down: first every call is answered 503 ``ServiceUnavailable``, then, for the second half, the port refuses
connections. The remaining executions start during the outage — their callback messages reach the queue, since the
emulator itself still runs. Then SageMaker comes back.

Pass: the replicas stay up; ``/readyz`` turns 503 during the outage (``sagemaker_reachable`` false) and 200 after
it; ``callback_worker_reports_pending`` shows the outcomes waiting; nothing is answered during the outage; once it
is over every execution Succeeds with echo's outputs (none failed), no handler ran twice for one execution, the
queue and the DLQ are empty and the replicas exit 0 after SIGTERM.

Size (``RELIABILITY_SCALE``): ``ci`` 60 executions and a 40-second outage; ``full`` 200 executions and 5 minutes.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_factory import make_plugin
from tests.reliability.audit import AuditedEmulator
from tests.reliability.conftest import Recorder
from tests.reliability.fleet import Fleet, check_empty, check_logs, check_outcomes, common_figures
from tests.reliability.outage import OutageProxy
from tests.reliability.pipelines import create_echo_pipeline
from tests.reliability.queues import SqsBackend, free_port, make_queue, sagemaker_client, wait_for
from tests.reliability.replicas import ReplicaSet, WorkerLogs, worker_env
from tests.reliability.scale import current_scale

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

#: Executions and outage seconds by scale.
SIZES = {"ci": (60, 40.0), "full": (200, 300.0)}
REPLICAS = 3
#: Executions started before the outage; their handlers are running when it begins.
FIRST_BATCH = 12
HANDLER_SECONDS = 3.0
#: After the outage every execution must finish within this many seconds (the worker's backoff is capped at 20 s).
RECOVERY_SECONDS = 120.0

COUNTED = """
import asyncio
import os

from callback_worker.handlers.echo import EchoHandler


class Counted:
    '''Writes one line per call (the execution ARN), sleeps, then answers as echo does.'''

    def __init__(self):
        self.echo = EchoHandler()

    async def __call__(self, context):
        with open(os.environ["COUNTED_LOG"], "a", encoding="utf-8") as log:
            log.write(context.pipeline_execution_arn + "\\n")
        await asyncio.sleep(float(os.environ["COUNTED_SECONDS"]))
        return await self.echo(context)
"""


def fetch(port: int, path: str) -> tuple[int, str]:
    """Status and body of ``path`` on a replica's health port (0 if the port does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode()
    except OSError:
        return 0, ""


def gauge(text: str, name: str) -> float:
    """The value of an unlabelled metric in a Prometheus text page (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


@dataclass
class Watch:
    """What the replicas' health ports showed during the outage."""

    ports: list[int]
    most_pending: float = 0.0
    all_unready: bool = False
    sagemaker_unreachable: bool = False

    def look(self) -> None:
        pending = 0.0
        statuses = []
        for port in self.ports:
            status, body = fetch(port, "/readyz")
            statuses.append(status)
            self.sagemaker_unreachable |= '"sagemaker_reachable": false' in body
            pending += gauge(fetch(port, "/metrics")[1], "callback_worker_reports_pending")
        self.most_pending = max(self.most_pending, pending)
        self.all_unready |= statuses == [503] * len(self.ports)


@dataclass
class OutageRun:
    fleet: Fleet
    figures: dict[str, Any]
    handler_runs: Counter[str]
    logs: WorkerLogs


@pytest.fixture(scope="module")
def outage_run(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageRun]:
    executions, seconds = SIZES[current_scale().name]
    tmp_path = tmp_path_factory.mktemp("sagemaker-outage")
    with pytest.MonkeyPatch.context() as monkeypatch, ExitStack() as stack:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server)  # where the emulator sends callback messages
        emulator = AuditedEmulator()
        emulator.start()
        stack.callback(emulator.stop)
        proxy = OutageProxy(emulator.endpoint_url)
        proxy.start()
        stack.callback(proxy.stop)
        yield run(Parts(SqsBackend("moto", moto_server), emulator, proxy), tmp_path, executions, seconds)


def replica_envs(backend: SqsBackend, queue_url: str, proxy: OutageProxy, tmp_path: Path, ports: list[int]) -> Any:
    return [
        worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=proxy.url,
            settings={"handler": "echo", "health_port": str(port), "health_host": "127.0.0.1"},
            python_path=[tmp_path / "plugin"],
        )
        | {"COUNTED_LOG": str(tmp_path / "runs.log"), "COUNTED_SECONDS": str(HANDLER_SECONDS)}
        for port in ports
    ]


@dataclass(frozen=True)
class Parts:
    backend: SqsBackend
    emulator: AuditedEmulator
    proxy: OutageProxy


def ready(ports: list[int]) -> bool:
    return [fetch(port, "/readyz")[0] for port in ports] == [200] * len(ports)


def run(parts: Parts, tmp_path: Path, executions: int, seconds: float) -> OutageRun:
    backend, emulator, proxy = parts.backend, parts.emulator, parts.proxy
    (tmp_path / "plugin").mkdir()
    make_plugin(tmp_path / "plugin", "reliability-counted", {"counted": "Counted"}, COUNTED)
    runs_log = tmp_path / "runs.log"
    runs_log.touch()
    ports = [free_port() for _ in range(REPLICAS)]
    with closing(backend.client()) as sqs, closing(sagemaker_client(emulator.endpoint_url)) as sagemaker:
        queue_url, dlq_url = make_queue(sqs, "smoutage", max_receive_count=10)
        pipeline = create_echo_pipeline(sagemaker, queue_url, {"handler": "counted"})
        fleet = Fleet(sqs, sagemaker, emulator, queue_url, dlq_url, pipeline)
        envs = replica_envs(backend, queue_url, proxy, tmp_path, ports)
        with ReplicaSet(REPLICAS, envs[0], tmp_path / "logs", envs=envs) as replicas:
            replicas.wait_started()
            wait_for(
                lambda: [fetch(port, "/readyz")[0] for port in ports] == [200] * REPLICAS, timeout=30, what="ready"
            )
            for _ in range(FIRST_BATCH):
                fleet.start_next()
            wait_for(lambda: len(runs_log.read_text().splitlines()) >= FIRST_BATCH // 2, timeout=60, what="handlers")
            figures = outage(fleet, proxy, Watch(ports), executions, seconds)
            figures["alive_during_outage"] = [replica.is_alive() for replica in replicas]
            restored = time.monotonic()
            fleet.wait_finished(RECOVERY_SECONDS)
            figures["all_answered_after"] = round(time.monotonic() - restored, 1)
            figures["ready_again_after"] = round(wait_for(lambda: ready(ports), timeout=60, what="ready again"), 1)
            fleet.wait_drained(60)
            figures["exit_codes"] = replicas.terminate_all()
        logs = WorkerLogs.read(replicas.log_paths())
    runs = Counter(runs_log.read_text().splitlines())
    figures |= {
        "proxy": dict(proxy.counts),
        "handler_runs": sum(runs.values()),
        **common_figures(emulator.snapshot(), logs),
    }
    return OutageRun(fleet, figures, runs, logs)


def outage(fleet: Fleet, proxy: OutageProxy, watch: Watch, executions: int, seconds: float) -> dict[str, Any]:
    """503 for the first half of ``seconds``, refused connections for the second; the remaining executions start
    during the first half. Watches the replicas' health ports meanwhile."""
    finished_before = fleet.emulator.finished_executions()
    began = time.monotonic()
    proxy.answer_503()
    remaining = executions - len(fleet.started)
    spacing = min(seconds / 2, 20.0) / max(remaining, 1)
    while len(fleet.started) < executions:
        fleet.start_next()
        time.sleep(spacing)
    while time.monotonic() - began < seconds:
        if proxy.mode == "503" and time.monotonic() - began >= seconds / 2:
            proxy.refuse()
        watch.look()
        time.sleep(1.0)
    finished_during = fleet.emulator.finished_executions() - finished_before
    proxy.restore()
    return {
        "executions": executions,
        "outage_seconds": round(time.monotonic() - began, 1),
        "finished_before_outage": finished_before,
        "finished_during_outage": finished_during,
        "most_reports_pending": watch.most_pending,
        "all_unready_during_outage": watch.all_unready,
        "sagemaker_unreachable_reported": watch.sagemaker_unreachable,
    }


def test_every_step_is_answered_once_sagemaker_returns(outage_run: OutageRun, record: Recorder) -> None:
    figures = outage_run.figures
    record(**{key: value for key, value in figures.items() if key != "faults"})
    assert figures["alive_during_outage"] == [True] * REPLICAS, "a replica died during the outage"
    assert figures["finished_during_outage"] == 0, "SageMaker answered during the outage: it was not down"
    assert figures["proxy"].get("503", 0) > 0, "no call met the 503 half of the outage"
    check_outcomes(outage_run.fleet, outage_run.fleet.emulator.snapshot())  # every one Succeeded: none failed
    check_empty(outage_run.fleet)
    check_logs(outage_run.logs, list(outage_run.fleet.emulator.snapshot().steps))
    assert figures["exit_codes"] == [0] * REPLICAS, "replicas did not exit 0 after SIGTERM"


def test_no_handler_runs_twice_for_one_step(outage_run: OutageRun) -> None:
    twice = {arn: count for arn, count in outage_run.handler_runs.items() if count > 1}
    assert twice == {}, f"handlers ran more than once for {len(twice)} executions"
    assert set(outage_run.handler_runs) == set(outage_run.fleet.started), "a step's handler never ran"


def test_the_outage_shows_in_readiness_and_metrics(outage_run: OutageRun) -> None:
    figures = outage_run.figures
    assert figures["all_unready_during_outage"], "/readyz never answered 503 on every replica during the outage"
    assert figures["sagemaker_unreachable_reported"], "/readyz never said SageMaker was unreachable"
    assert figures["most_reports_pending"] > 0, "callback_worker_reports_pending never showed a waiting outcome"
    assert figures["ready_again_after"] < 60
