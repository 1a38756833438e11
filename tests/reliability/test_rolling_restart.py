"""Scenarios 2 and 5: a rolling restart — every replica SIGTERMed in turn while long handlers run.

Each step of the roll waits until the replica has a handler running, sends SIGTERM and expects exit code 0 after
the grace period; handlers still running then are cancelled and their messages made visible again at once, for the
other replicas. The visibility timeout is long (120 s) on purpose: a message left hidden by a shutdown would finish
only after it expired, so every step must have been answered well within it. Run against moto and LocalStack.

Each replica is signalled as soon as it runs a handler, whatever its poller is doing — often in the middle of a long
poll. Until bb9409f that lost the messages the server later handed to the abandoned poll for a whole visibility
timeout; the last test pins that case on its own.
"""

from __future__ import annotations

import functools
import signal
import time
from contextlib import closing
from pathlib import Path

import pytest

from callback_worker.offline import CLOSED_ENDPOINT
from tests.plugin_factory import make_plugin
from tests.reliability.conftest import EmulatorFactory, Recorder
from tests.reliability.fleet import Fleet, common_figures, verify
from tests.reliability.pipelines import create_echo_pipeline
from tests.reliability.queues import SqsBackend, json_body, make_queue, sagemaker_client, wait_for
from tests.reliability.replicas import Replica, ReplicaSet, WorkerLogs, worker_env
from tests.reliability.scale import Scale, current_scale

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

VISIBILITY_TIMEOUT = 120
HANDLER_SECONDS = 3.0
SHUTDOWN_GRACE = 1.0
CONCURRENCY = 5
MAX_IN_FLIGHT = 60
SLEEPY = """
import asyncio
import os
import pathlib

from callback_worker.handlers.echo import EchoHandler


class Sleepy:
    '''Sleeps, then answers as echo does; a marker file names the process while it runs.'''

    def __init__(self):
        self.echo = EchoHandler()

    async def __call__(self, context):
        marker = pathlib.Path(os.environ["SLEEPY_DIR"]) / f"{os.getpid()}-{context.message_id}"
        marker.touch()
        try:
            await asyncio.sleep(float(os.environ["SLEEPY_SECONDS"]))
        finally:
            marker.unlink(missing_ok=True)
        return await self.echo(context)
"""


def running_handlers(markers: Path, replica: Replica) -> int:
    return len(list(markers.glob(f"{replica.pid}-*")))


def top_up(fleet: Fleet, total: int) -> bool:
    """Start executions until ``MAX_IN_FLIGHT`` wait; True once all ``total`` have started."""
    while len(fleet.started) < total and fleet.in_flight() < MAX_IN_FLIGHT:
        fleet.start_next()
    return len(fleet.started) == total


def busy(fleet: Fleet, total: int, markers: Path, replica: Replica) -> bool:
    """``replica`` runs at least one handler (topping up the executions meanwhile)."""
    top_up(fleet, total)
    return running_handlers(markers, replica) > 0


def roll(fleet: Fleet, replicas: ReplicaSet, markers: Path, *, total: int, rounds: int) -> int:
    """SIGTERM every replica in turn, ``rounds`` times, each while it runs a handler; returns the restarts."""
    restarts = 0
    for _ in range(rounds):
        for replica in replicas:
            wait_for(
                functools.partial(busy, fleet, total, markers, replica),
                timeout=60,
                what=f"a handler running on replica {replica.index}",
                interval=0.05,
            )
            code = replica.stop(signal.SIGTERM, timeout=30)
            assert code == 0, f"replica {replica.index} exited {code} after SIGTERM: {replica.tail()}"
            replica.start()
            replica.wait_started()
            restarts += 1
    return restarts


def test_rolling_restart_never_leaves_a_message_to_its_visibility_timeout(
    backend: SqsBackend, scale: Scale, emulator_factory: EmulatorFactory, tmp_path: Path, record: Recorder
) -> None:
    emulator = emulator_factory()
    (tmp_path / "plugin").mkdir()
    make_plugin(tmp_path / "plugin", "reliability-sleepy", {"sleepy": "Sleepy"}, SLEEPY)
    markers = tmp_path / "running"
    markers.mkdir()
    total = scale.rolling_executions
    with closing(backend.client()) as sqs, closing(sagemaker_client(emulator.endpoint_url)) as sagemaker:
        queue_url, dlq_url = make_queue(sqs, "rolling", max_receive_count=10, visibility_timeout=VISIBILITY_TIMEOUT)
        pipeline = create_echo_pipeline(sagemaker, queue_url, {"handler": "sleepy"})
        fleet = Fleet(sqs, sagemaker, emulator, queue_url, dlq_url, pipeline)
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=emulator.endpoint_url,
            settings={
                "handler": "echo",
                "visibility_timeout": str(VISIBILITY_TIMEOUT),
                "shutdown_grace": str(SHUTDOWN_GRACE),
                "concurrency": str(CONCURRENCY),
                "wait_time": "2",
            },
            python_path=[tmp_path / "plugin"],
        )
        env.update(SLEEPY_DIR=str(markers), SLEEPY_SECONDS=str(HANDLER_SECONDS))
        began = time.time()
        with ReplicaSet(scale.replicas, env, tmp_path / "logs") as replicas:
            replicas.wait_started()
            restarts = roll(fleet, replicas, markers, total=total, rounds=scale.rolling_rounds)
            wait_for(functools.partial(top_up, fleet, total), timeout=300, what="every execution to start")
            snapshot, logs, drained = verify(fleet, replicas, drain_timeout=VISIBILITY_TIMEOUT)
    answer_times = [step.end_time - step.start_time for step in snapshot.steps.values() if step.end_time is not None]
    slowest = max(answer_times)
    assert slowest < VISIBILITY_TIMEOUT / 2, f"a step took {slowest:.0f} s: a message waited out its visibility"
    released = released_messages(logs)
    assert released > 0, "no SIGTERM found a handler past its grace period: the roll released nothing"
    record(
        backend=backend.name,
        **common_figures(snapshot, logs),
        sigterms=restarts,
        released_on_shutdown=released,
        slowest_step_seconds=round(slowest, 1),
        drain_seconds=round(drained, 1),
        total_seconds=round(time.time() - began, 1),
    )


def released_messages(logs: WorkerLogs) -> int:
    """Messages made visible again by draining replicas."""
    return sum(
        int(event.get("count", 0)) for event in logs.events if event.get("event") == "released unfinished messages"
    )


def test_sigterm_during_a_long_poll_leaves_no_message_hidden(
    backend: SqsBackend, tmp_path: Path, record: Recorder
) -> None:
    """A message that reaches the queue while a stopping replica's long poll is still open comes back at once.

    Regression (fixed in bb9409f): the poll was cancelled client-side only; SQS handed the message to the abandoned
    request and hid it for the whole visibility timeout, with no worker running.
    """
    with closing(backend.client()) as sqs:
        queue_url, _ = make_queue(sqs, "longpoll", visibility_timeout=VISIBILITY_TIMEOUT)
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=CLOSED_ENDPOINT,
            # No SageMaker answers here: tokens unverified, or start-up would stop on the unreachable endpoint.
            settings={
                "handler": "echo",
                "visibility_timeout": str(VISIBILITY_TIMEOUT),
                "wait_time": "20",
                "verify_tokens": "false",
            },
        )
        with ReplicaSet(1, env, tmp_path / "logs") as replicas:
            replicas.wait_started()
            time.sleep(1.0)  # the poller is inside its 20-second long poll on the empty queue
            replicas[0].send(signal.SIGTERM)
            time.sleep(1.0)  # stopping: no new receive starts, the open one is still waiting
            sqs.send_message(QueueUrl=queue_url, MessageBody=json_body({"token": "Tok0000001", "status": "Executing"}))
            assert replicas[0].wait_exit() == 0
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    logs = WorkerLogs.read(replicas.log_paths())
    record(backend=backend.name, **attributes, released=logs.count("released messages received while stopping"))
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0", (
        f"the message the open long poll received is hidden for {VISIBILITY_TIMEOUT} s with no worker running"
    )
    assert attributes["ApproximateNumberOfMessages"] == "1"
