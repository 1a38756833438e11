"""The SageMaker emulator with an audit trail of every ``SendPipelineExecutionStep*`` call it answered.

The emulator records the *first* answer of each step (``StepRun.answer``) and counts injected faults, but not what
happened to the requests after that: how many were idempotent replays, how many got ``ConflictException`` or
``ValidationException``. :class:`AuditedEmulatorServer` keeps one :class:`SendRecord` per answered Send* request
(the response status and error code, the ClientRequestToken and what the request asked for), from which the tests
compute replays, conflicts, validation errors and the outcomes applied per token.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.emulator.protocol import TARGET_HEADER
from callback_worker.emulator.server import EmulatorServer

SEND_OPERATIONS = {
    "SendPipelineExecutionStepSuccess": "Success",
    "SendPipelineExecutionStepFailure": "Failure",
}
#: The text the fault injector puts in an InternalFailure it raises after the operation took effect.
AFTER_CHANGE_MARKER = "after the change"


@dataclass(frozen=True)
class SendRecord:
    """One answered Send* request."""

    outcome: str
    """``Success`` or ``Failure``."""
    token: str
    client_request_token: str | None
    request: str
    """What was asked: the outputs of a Success, the reason of a Failure (canonical JSON)."""
    status: int
    code: str | None
    """The error code (``__type``) of a non-200 response."""
    applied: bool
    """The request went through the operation: HTTP 200, or an InternalFailure injected after the change."""


@dataclass(frozen=True)
class StepView:
    """A callback step as the emulator holds it."""

    execution_arn: str
    status: str
    start_time: float
    end_time: float | None
    answer: str | None
    failure_reason: str | None
    outputs: dict[str, str] | None


@dataclass(frozen=True)
class Snapshot:
    """The emulator's state at one moment, copied on its own loop."""

    executions: dict[str, str]
    """Status by execution ARN."""
    steps: dict[str, StepView]
    """By callback token."""
    sends: list[SendRecord]
    injected: dict[tuple[str, str], int]
    messages_sent: int
    send_failures: list[str]
    taken_at: float = field(default_factory=time.time)

    def statuses(self) -> Counter[str]:
        """Executions by status."""
        return Counter(self.executions.values())

    def faults_by_kind(self) -> dict[str, int]:
        """Injected faults summed by kind (``throttle``, ``error``, ``error_after``)."""
        kinds: Counter[str] = Counter()
        for (_, kind), count in self.injected.items():
            kinds[kind] += count
        return dict(sorted(kinds.items()))

    def applied_outcomes(self) -> dict[str, set[tuple[str, str]]]:
        """Per token, the distinct (outcome, request) pairs the emulator applied or replayed."""
        outcomes: dict[str, set[tuple[str, str]]] = {}
        for record in self.sends:
            if record.applied:
                outcomes.setdefault(record.token, set()).add((record.outcome, record.request))
        return outcomes

    def conflicting_tokens(self) -> list[str]:
        """Tokens answered with two different outcomes (or two different requests of one outcome)."""
        return sorted(token for token, answers in self.applied_outcomes().items() if len(answers) > 1)

    def codes(self) -> Counter[str]:
        """Send* responses by error code (``OK`` for HTTP 200)."""
        return Counter(record.code or "OK" for record in self.sends)

    def replays(self) -> int:
        """Send* requests that went through the operation after the step already had its answer.

        Each answered token was applied exactly once; every other applied request for it was a replay.
        """
        applied = sum(1 for record in self.sends if record.applied)
        answered_tokens = len({record.token for record in self.sends if record.applied})
        return applied - answered_tokens


class AuditedEmulatorServer(EmulatorServer):
    """:class:`EmulatorServer` that records every Send* request it answers (in :attr:`sends`)."""

    def __init__(self, host: str, port: int, **options: Any) -> None:
        super().__init__(host, port, **options)
        self.sends: list[SendRecord] = []

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        operation = str(request.headers.get(TARGET_HEADER, "")).rpartition(".")[2]
        if operation in SEND_OPERATIONS:
            self.sends.append(_record(SEND_OPERATIONS[operation], await request.read(), response))
        return response


def _record(outcome: str, raw: bytes, response: web.Response) -> SendRecord:
    try:
        params: Mapping[str, Any] = json.loads(raw)
    except ValueError:
        params = {}
    asked = params.get("OutputParameters", []) if outcome == "Success" else params.get("FailureReason")
    code: str | None = None
    message = ""
    if response.status != 200 and isinstance(response.body, bytes):
        error = json.loads(response.body)
        code, message = str(error.get("__type")), str(error.get("Message", error.get("message", "")))
    return SendRecord(
        outcome=outcome,
        token=str(params.get("CallbackToken")),
        client_request_token=params.get("ClientRequestToken"),
        request=json.dumps(asked, sort_keys=True),
        status=response.status,
        code=code,
        applied=response.status == 200 or (code == "InternalFailure" and AFTER_CHANGE_MARKER in message),
    )


class AuditedEmulator(ThreadedEmulatorServer):
    """:class:`ThreadedEmulatorServer` running an :class:`AuditedEmulatorServer`, with snapshots of its state."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        super().__init__(host, port, **options)
        self.audited = AuditedEmulatorServer(host, port, **options)
        # The threaded runner serves whatever EmulatorServer it holds; it offers no other way to choose one.
        self._server = self.audited

    def snapshot(self) -> Snapshot:
        """A consistent copy of the state (taken on the server's loop)."""
        return self.call(self._snapshot)

    def finished_executions(self) -> int:
        """Executions that reached Succeeded, Failed or Stopped."""
        return self.call(lambda: sum(1 for e in self.audited.store.executions.values() if e.finished))

    def _snapshot(self) -> Snapshot:
        store = self.audited.store
        engine = self.audited.engine
        steps = {
            token: StepView(
                execution_arn=execution.arn,
                status=run.status.value,
                start_time=run.start_time,
                end_time=run.end_time,
                answer=run.answer.operation if run.answer else None,
                failure_reason=run.failure_reason,
                outputs=None if run.outputs is None else {item["Name"]: item["Value"] for item in run.outputs},
            )
            for token, (execution, run) in store.tokens.items()
        }
        return Snapshot(
            executions={arn: execution.status.value for arn, execution in store.executions.items()},
            steps=steps,
            sends=list(self.audited.sends),
            injected=dict(self.audited.injector.counts),
            messages_sent=len(engine.sent),
            send_failures=[text for _, text in engine.send_failures],
        )
