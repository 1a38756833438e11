"""Scenario 3, through the running daemon: mutated real callback messages and tokenless garbage on one queue.

Executions of a pipeline whose callback queue nobody serves (the *capture* queue) give real messages with live
tokens; each is disfigured by a hypothesis-drawn :class:`~tests.reliability.strategies.Mutation` that keeps the
token where the worker finds it, and sent to the worker's queue together with bodies that carry no usable token.
The queue has a redrive policy (two receives) and a DLQ. Pass: every mutated message was answered (its execution
ended Succeeded or Failed), every garbage body and nothing else ended in the DLQ, the queue is empty, the worker ran
throughout and still completes a good execution, and its logs show no handling error and no whole token.
"""

from __future__ import annotations

import json
import math
import signal
import time
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.emulator_fixtures import callback_step, create_pipeline, pipeline_definition, receive_messages
from tests.plugin_factory import make_plugin
from tests.reliability.conftest import EmulatorFactory, Recorder
from tests.reliability.fleet import FENCED_EVENTS, check_audit, check_logs
from tests.reliability.queues import SqsBackend, make_queue, queue_depth, sagemaker_client, wait_for
from tests.reliability.replicas import Replica, ReplicaSet, WorkerLogs, worker_env
from tests.reliability.scale import Scale, current_scale, current_seed
from tests.reliability.strategies import draw, garbage_bodies, mutations, sqs_safe

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

VISIBILITY_TIMEOUT = 3
MAX_RECEIVE_COUNT = 2
WAVE = 20
MAX_QUEUED = 40
TERMINAL = ("Succeeded", "Failed")


def wait_status(sagemaker: SageMakerClient, arn: str, replica: Replica, timeout: float = 60) -> str:
    status = ""

    def finished() -> bool:
        nonlocal status
        assert replica.is_alive(), f"the worker died: {replica.tail()}"
        status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        return status in (*TERMINAL, "Stopped")

    wait_for(finished, timeout=timeout, what=f"execution {arn} to finish")
    return status


def start(sagemaker: SageMakerClient, pipeline: str) -> str:
    response = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=str(uuid.uuid4()))
    return response["PipelineExecutionArn"]


def garbage(count: int, seed: int) -> list[str]:
    """Tokenless bodies an SQS queue can carry (1 character to 200 KB)."""
    bodies = [sqs_safe(body) for body in draw(garbage_bodies(), count * 2, seed)]
    return [body for body in bodies if body.strip()][:count]


class Feeder:
    """Sends bodies to the worker's queue in waves, keeping the queue short (moto slows with depth)."""

    def __init__(self, sqs: SQSClient, queue_url: str, replica: Replica) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.replica = replica

    def send(self, bodies: list[str]) -> None:
        wait_for(self._room, timeout=120, what="room in the queue")
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def _room(self) -> bool:
        assert self.replica.is_alive(), f"the worker died: {self.replica.tail()}"
        return queue_depth(self.sqs, self.queue_url) < MAX_QUEUED


def mutated_bodies(
    sagemaker: SageMakerClient, sqs: SQSClient, *, pipeline: str, capture_url: str, count: int, seed: int
) -> tuple[list[str], list[str]]:
    """Start ``count`` executions, take their real messages off the capture queue, mutate them: (bodies, ARNs)."""
    plans = draw(mutations, count, seed)
    arns = [start(sagemaker, pipeline) for _ in range(count)]
    real = receive_messages(sqs, capture_url, count, timeout=60)
    assert sorted(message["pipelineExecutionArn"] for message in real) == sorted(arns)
    return [plan.apply(message) for plan, message in zip(plans, real, strict=True)], arns


def test_fuzzed_bodies_through_the_daemon_are_answered_or_dead_lettered(
    moto_server: str, scale: Scale, emulator_factory: EmulatorFactory, tmp_path: Path, record: Recorder
) -> None:
    seed = current_seed()
    backend = SqsBackend("moto", moto_server)
    emulator = emulator_factory()
    tokenless = garbage(scale.fuzz_daemon_garbage, seed)
    with closing(backend.client()) as sqs, closing(sagemaker_client(emulator.endpoint_url)) as sagemaker:
        capture_url, _ = make_queue(sqs, "capture")
        queue_url, dlq_url = make_queue(
            sqs, "fuzz", max_receive_count=MAX_RECEIVE_COUNT, visibility_timeout=VISIBILITY_TIMEOUT
        )
        assert dlq_url is not None
        fuzz = create_pipeline(sagemaker, pipeline_definition([callback_step("Fuzz", capture_url, arguments={"a": 1})]))
        good = create_pipeline(sagemaker, pipeline_definition([callback_step("Good", queue_url, arguments={"b": 2})]))
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=emulator.endpoint_url,
            # Parsing robustness: a mutation may move a live token under another execution's ARN, which token
            # verification (tested in tests/faults) would rightly refuse to confirm and delete unanswered.
            settings={
                "handler": "echo",
                "visibility_timeout": str(VISIBILITY_TIMEOUT),
                "wait_time": "1",
                "verify_tokens": "false",
            },
        )
        arns: list[str] = []
        began = time.monotonic()
        with ReplicaSet(1, env, tmp_path / "logs") as replicas:
            worker = replicas[0]
            feeder = Feeder(sqs, queue_url, worker)
            waves = range(0, scale.fuzz_daemon_tokens, WAVE)
            per_wave = math.ceil(len(tokenless) / len(waves))
            for number, first in enumerate(waves):
                count = min(WAVE, scale.fuzz_daemon_tokens - first)
                bodies, started = mutated_bodies(
                    sagemaker, sqs, pipeline=fuzz, capture_url=capture_url, count=count, seed=seed + number
                )
                arns += started
                feeder.send(bodies + tokenless[number * per_wave : (number + 1) * per_wave])
            statuses = Counter(wait_status(sagemaker, arn, worker) for arn in arns)
            wait_for(lambda: queue_depth(sqs, queue_url) == 0, timeout=120, what="an empty queue")
            dead = wait_dead_letters(sqs, dlq_url, len(tokenless))
            final = wait_status(sagemaker, start(sagemaker, good), worker)
            assert worker.stop(signal.SIGTERM) == 0
        seconds = time.monotonic() - began
    snapshot = emulator.snapshot()
    logs = WorkerLogs.read(replicas.log_paths())
    assert set(statuses) <= set(TERMINAL), f"mutated messages left unanswered or stopped: {statuses}"
    assert Counter(dead) == Counter(tokenless), "the DLQ must hold exactly the tokenless bodies"
    assert final == "Succeeded", "the worker no longer completes a good execution"
    check_audit(snapshot)
    check_logs(logs, list(snapshot.steps))
    assert logs.count("malformed message without a usable token; left for the queue's redrive policy") >= len(tokenless)
    record(
        bodies_with_token=len(arns),
        tokenless_bodies=len(tokenless),
        outcomes=dict(statuses),
        answered_malformed=logs.count("malformed callback message; answering with a failure"),
        dead_lettered=len(dead),
        replays=snapshot.replays(),
        send_codes=dict(snapshot.codes()),
        seconds=round(seconds, 1),
    )


def wait_dead_letters(sqs: SQSClient, dlq_url: str, expected: int) -> list[str]:
    """Every body of the DLQ once ``expected`` arrived (taken off it)."""
    wait_for(lambda: queue_depth(sqs, dlq_url) >= expected, timeout=120, what=f"{expected} dead letters")
    bodies: list[str] = []
    while len(bodies) < expected:
        response = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    assert queue_depth(sqs, dlq_url) == 0, "more dead letters than tokenless bodies"
    return bodies


CRASHY = """
class Crashy:
    def __call__(self, context):
        raise RuntimeError("this handler always fails")
"""


def test_a_crashing_handler_on_escaped_lone_surrogates_still_answers_the_step(
    moto_server: str, emulator_factory: EmulatorFactory, tmp_path: Path, record: Recorder
) -> None:
    """Regression (fixed in bb9409f): the crash-retry re-queue of such a message failed inside the worker, which
    kept the message until the DLQ and never answered the step."""
    emulator = emulator_factory()
    (tmp_path / "plugin").mkdir()
    make_plugin(tmp_path / "plugin", "reliability-crashy", {"crashy": "Crashy"}, CRASHY)
    with (
        closing(SqsBackend("moto", moto_server).client()) as sqs,
        closing(sagemaker_client(emulator.endpoint_url)) as sm,
    ):
        queue_url, _ = make_queue(sqs, "surrogate", max_receive_count=5, visibility_timeout=VISIBILITY_TIMEOUT)
        arguments: dict[str, Any] = {"handler": "crashy", "text": "\ud800"}
        definition = pipeline_definition([callback_step("Crash", queue_url, arguments=arguments)])
        assert "\\ud800" in json.dumps(json.loads(definition))
        pipeline = create_pipeline(sm, definition)
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=moto_server,
            sagemaker_endpoint=emulator.endpoint_url,
            settings={"max_attempts": "2", "retry_backoff": "0", "visibility_timeout": str(VISIBILITY_TIMEOUT)},
            python_path=[tmp_path / "plugin"],
        )
        with ReplicaSet(1, env, tmp_path / "logs") as replicas:
            arn = start(sm, pipeline)
            logs_path = replicas[0].incarnations[0].log_path
            wait_for(
                lambda: emulator.finished_executions() == 1 or any(e in logs_path.read_text() for e in FENCED_EVENTS),
                timeout=60,
                what="the step to be answered",
            )
            status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    record(status=status)
    assert status == "Failed", "the step was not answered: the re-queue failed inside the worker"
