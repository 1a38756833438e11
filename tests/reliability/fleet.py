"""One scenario's moving parts — queue and DLQ, emulator, pipeline, replicas — and the checks every run must pass.

The checks are the promise the issue states: every execution Succeeded with the outputs its arguments call for; no
token answered with two different outcomes; no ConflictException, ValidationException or unknown token; the queue
and the DLQ empty at the end; no whole token in any log line; no message handling that failed inside the worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.reliability.audit import AuditedEmulator, Snapshot, StepView
from tests.reliability.pipelines import expected_outputs, start
from tests.reliability.queues import queue_depth, wait_for
from tests.reliability.replicas import ReplicaSet, WorkerLogs

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

#: Worker log events that mean the worker's own code failed on a message (the per-message fence caught it).
FENCED_EVENTS = ("unexpected error while handling a message; it will be delivered again",)


@dataclass
class Fleet:
    """A scenario's queue (with its DLQ), emulator, pipeline and the executions started so far."""

    sqs: SQSClient
    sagemaker: SageMakerClient
    emulator: AuditedEmulator
    queue_url: str
    dlq_url: str | None
    pipeline: str
    started: dict[str, int] = field(default_factory=dict)
    """Execution ARN → its index (the ``Index`` parameter)."""
    last_started_at: float = 0.0
    """``time.monotonic()`` when the latest execution started."""

    def start_next(self) -> str:
        index = len(self.started)
        arn = start(self.sagemaker, self.pipeline, index)
        self.started[arn] = index
        self.last_started_at = time.monotonic()
        return arn

    def in_flight(self) -> int:
        return len(self.started) - self.emulator.finished_executions()

    def all_finished(self) -> bool:
        return self.emulator.finished_executions() >= len(self.started)

    def depth(self) -> int:
        """Messages left in the queue and the DLQ together."""
        dlq = 0 if self.dlq_url is None else queue_depth(self.sqs, self.dlq_url)
        return queue_depth(self.sqs, self.queue_url) + dlq

    def wait_finished(self, timeout: float) -> float:
        return wait_for(self.all_finished, timeout=timeout, what=f"{len(self.started)} executions to finish")

    def wait_drained(self, timeout: float) -> float:
        """Wait until the queue holds nothing (messages of killed replicas come back and are settled)."""
        return wait_for(lambda: queue_depth(self.sqs, self.queue_url) == 0, timeout=timeout, what="an empty queue")


def steps_by_execution(snapshot: Snapshot) -> dict[str, StepView]:
    return {step.execution_arn: step for step in snapshot.steps.values()}


def check_outcomes(fleet: Fleet, snapshot: Snapshot) -> None:
    """Every execution Succeeded with echo's outputs, and the Send* audit shows one outcome per token."""
    steps = steps_by_execution(snapshot)
    not_succeeded = {
        arn: (snapshot.executions[arn], steps[arn].status, steps[arn].failure_reason)
        for arn in fleet.started
        if snapshot.executions[arn] != "Succeeded"
    }
    assert not not_succeeded, f"{len(not_succeeded)} executions did not succeed (lost): {not_succeeded}"
    wrong = {
        arn: steps[arn].outputs
        for arn, index in fleet.started.items()
        if steps[arn].outputs != expected_outputs(index) or steps[arn].answer != "Success"
    }
    assert not wrong, f"steps answered with other outputs than echo's: {wrong}"
    check_audit(snapshot)


def check_audit(snapshot: Snapshot) -> None:
    """No token answered twice differently; no Conflict, Validation or unknown-token answer; every message sent."""
    assert snapshot.conflicting_tokens() == [], "tokens answered with two different outcomes"
    codes = snapshot.codes()
    for code in ("ConflictException", "ValidationException", "ResourceNotFound", "SerializationException"):
        assert codes[code] == 0, f"{codes[code]} Send* answers were {code}: {codes}"
    assert snapshot.send_failures == [], f"the emulator could not deliver callback messages: {snapshot.send_failures}"


def check_empty(fleet: Fleet) -> None:
    assert queue_depth(fleet.sqs, fleet.queue_url) == 0, "messages left in the queue"
    if fleet.dlq_url is not None:
        assert queue_depth(fleet.sqs, fleet.dlq_url) == 0, "messages in the dead-letter queue"


def check_logs(logs: WorkerLogs, tokens: list[str], *, json_only: bool = True) -> None:
    """Every line is JSON (unless ``json_only`` is off); no token appears whole; the per-message fence never fired."""
    if json_only:
        assert logs.unparsed == [], f"log lines that are not JSON: {logs.unparsed[:5]}"
    assert logs.leaked_tokens(tokens) == [], "callback tokens appear whole in the worker logs"
    fenced = [event for event in logs.events if event.get("event") in FENCED_EVENTS]
    assert fenced == [], f"the worker failed on messages: {fenced[:3]}"


def common_figures(snapshot: Snapshot, logs: WorkerLogs) -> dict[str, Any]:
    codes = snapshot.codes()
    return {
        "executions": len(snapshot.executions),
        "succeeded": snapshot.statuses()["Succeeded"],
        "lost": sum(1 for status in snapshot.executions.values() if status != "Succeeded"),
        "conflicting": len(snapshot.conflicting_tokens()),
        "send_calls": len(snapshot.sends),
        "replays": snapshot.replays(),
        "faults": snapshot.faults_by_kind(),
        "conflict_exceptions": codes["ConflictException"],
        "validation_exceptions": codes["ValidationException"],
        "redeliveries": logs.redeliveries(),
        "dropped_copies": logs.count("token already answered here; dropping this copy"),
    }


def verify(
    fleet: Fleet, replicas: ReplicaSet, *, drain_timeout: float, json_only: bool = True
) -> tuple[Snapshot, WorkerLogs, float]:
    """Wait for every execution and for the queue to drain, stop the replicas (SIGTERM, exit 0), run every check.

    Returns the emulator's final state, the logs and the time to drain: seconds from the start of the last
    execution until every execution had finished and the queue was empty.
    """
    fleet.wait_finished(drain_timeout)
    fleet.wait_drained(drain_timeout)
    drained = time.monotonic() - fleet.last_started_at
    exit_codes = replicas.terminate_all()
    assert exit_codes == [0] * len(exit_codes), f"replicas did not exit 0 after SIGTERM: {exit_codes}"
    snapshot = fleet.emulator.snapshot()
    logs = WorkerLogs.read(replicas.log_paths())
    check_outcomes(fleet, snapshot)
    check_empty(fleet)
    check_logs(logs, list(snapshot.steps), json_only=json_only)
    return snapshot, logs, drained
