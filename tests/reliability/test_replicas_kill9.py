"""Scenarios 1 and 5: replicas on one queue, SIGKILLed and restarted, while SageMaker throttles and fails.

Three ``callback-worker run`` processes share one queue (with a dead-letter queue). Executions start at a steady
pace; every few seconds a random replica is killed with SIGKILL and started again, so messages it held in flight
come back after the (short) visibility timeout. The emulator answers ~20 % of Send* calls ThrottlingException,
~5 % InternalFailure before the change, ~5 % InternalFailure *after* the change (the client retries a request that
already took effect: an idempotent replay) and adds latency. Run against moto and, when available, LocalStack.
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from callback_worker.emulator import FaultConfig, OperationFaults
from tests.reliability.audit import SEND_OPERATIONS
from tests.reliability.conftest import EmulatorFactory, Recorder
from tests.reliability.fleet import Fleet, common_figures, verify
from tests.reliability.pipelines import create_echo_pipeline
from tests.reliability.queues import SqsBackend, make_queue, sagemaker_client
from tests.reliability.replicas import ReplicaSet, worker_env
from tests.reliability.scale import Scale, current_scale, current_seed

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

SEND_FAULTS = OperationFaults(throttle=0.2, error=0.05, error_after=0.05, latency=0.005, jitter=0.02)
#: Short enough that a killed replica's messages come back quickly; the worker renews it while handlers run.
VISIBILITY_TIMEOUT = 5
#: A message received this often goes to the DLQ; killed replicas make some receives count for nothing.
MAX_RECEIVE_COUNT = 10
#: Seconds the run should last, so that the replicas are killed several times whatever the backend's speed (the
#: first kill comes after 1.5 to 4.5 s, each next one as much later: 15 s make at least three).
TARGET_SECONDS = {"ci": 15.0, "full": 150.0}
#: Executions waiting for an answer at once (moto slows down quadratically with queue depth).
MAX_IN_FLIGHT = {"moto": 40, "localstack": 200}


@dataclass
class Killer:
    """SIGKILLs a random replica every ``interval`` seconds on average and starts it again at once."""

    replicas: ReplicaSet
    interval: float
    rng: random.Random
    next_at: float = 0.0
    kills: int = 0

    def arm(self) -> None:
        self.next_at = time.monotonic() + self.interval * self.rng.uniform(0.5, 1.5)

    def tick(self) -> None:
        if time.monotonic() < self.next_at:
            return
        victim = self.replicas[self.rng.randrange(len(self.replicas))]
        code = victim.stop(signal.SIGKILL)
        assert code == -signal.SIGKILL, f"replica {victim.index} had already exited with {code}: {victim.tail()}"
        victim.start()
        self.kills += 1
        self.arm()


def check_alive(replicas: ReplicaSet) -> None:
    """No replica may exit on its own."""
    dead = [
        f"replica {r.index} exited with {r.incarnations[-1].process.returncode}" for r in replicas if not r.is_alive()
    ]
    assert not dead, f"{dead}: {[r.tail() for r in replicas if not r.is_alive()]}"


def drive(fleet: Fleet, killer: Killer, total: int, *, rate: float, max_in_flight: int, timeout: float) -> float:
    """Start ``total`` executions at ``rate`` per second while the killer runs; returns when all finished."""
    began = time.monotonic()
    killer.arm()
    while not (len(fleet.started) == total and fleet.all_finished()):
        elapsed = time.monotonic() - began
        assert elapsed < timeout, f"{fleet.in_flight()} of {len(fleet.started)} executions unfinished after {timeout} s"
        due = min(total, int(rate * elapsed) + 1)
        while len(fleet.started) < due and fleet.in_flight() < max_in_flight:
            fleet.start_next()
        killer.tick()
        check_alive(killer.replicas)
        time.sleep(0.2)
    return time.monotonic() - began


def test_replicas_killed_with_sigkill_answer_every_token_once(
    backend: SqsBackend, scale: Scale, emulator_factory: EmulatorFactory, tmp_path: Path, record: Recorder
) -> None:
    seed = current_seed()
    total = scale.chaos_executions_moto if backend.name == "moto" else scale.chaos_executions_localstack
    faults = FaultConfig(operations=dict.fromkeys(SEND_OPERATIONS, SEND_FAULTS), seed=seed)
    emulator = emulator_factory(faults)
    with closing(backend.client()) as sqs, closing(sagemaker_client(emulator.endpoint_url)) as sagemaker:
        queue_url, dlq_url = make_queue(sqs, "kill9", max_receive_count=MAX_RECEIVE_COUNT)
        fleet = Fleet(sqs, sagemaker, emulator, queue_url, dlq_url, create_echo_pipeline(sagemaker, queue_url))
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=emulator.endpoint_url,
            settings={"handler": "echo", "visibility_timeout": str(VISIBILITY_TIMEOUT), "wait_time": "2"},
        )
        with ReplicaSet(scale.replicas, env, tmp_path / "logs") as replicas:
            killer = Killer(replicas, scale.kill_interval, random.Random(seed))
            rate = total / TARGET_SECONDS[scale.name]
            run = drive(fleet, killer, total, rate=rate, max_in_flight=MAX_IN_FLIGHT[backend.name], timeout=600)
            snapshot, logs, drained = verify(fleet, replicas, drain_timeout=120)
    assert killer.kills >= 3, f"only {killer.kills} kills: the scenario did not test what it claims"
    faults_seen = snapshot.faults_by_kind()
    assert all(faults_seen.get(kind, 0) > 0 for kind in ("throttle", "error", "error_after")), faults_seen
    assert snapshot.replays() > 0, "no idempotent replay happened: error_after faults should cause some"
    record(
        backend=backend.name,
        **common_figures(snapshot, logs),
        kills=killer.kills,
        run_seconds=round(run, 1),
        drain_seconds=round(drained, 1),
    )
