"""Reporting outcomes to SageMaker: SendPipelineExecutionStepSuccess / Failure, until SageMaker answers definitively.

Errors are classed by the one table, :mod:`worker.taxonomy`. Every transient one — throttling, 5xx, no connection,
and every answer not positively known to be final (access denied while an IAM change propagates, an expired token, a
failed credential refresh, ``ResourceLimitExceeded``, any other 4xx) — is retried with jittered backoff for as long
as it takes, the decided answer unchanged; the caller keeps the message leased meanwhile and, if it must let go (a
shutdown, the 12-hour receipt budget), hands the answer on (:mod:`worker.settle`). ``ConflictException`` (the step
already has an answer) and ``ResourceNotFound`` (SageMaker does not know the token) are definitive. Only a
``ValidationException`` about the outputs themselves turns a Success into a Failure, and the Failure says so.

Every attempt goes through the process's :class:`~worker.sagemaker_calls.SageMakerCalls` (the adaptive rate
limiter). A report publishes :class:`~worker.events.ReportStarted` as it begins (the worker frees the message's
handler slot then: a report waiting for SageMaker holds its lease, not a slot) and :class:`~worker.events.ReportEnded`
with the time it took, limiter waits included.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from callback_worker.worker.events import NO_EVENTS, CallFailed, Events, ReportEnded, ReportStarted
from callback_worker.worker.logs import get_logger
from callback_worker.worker.outcome import Failure, Outcome, Success, failure
from callback_worker.worker.retrying import REPORT_BACKOFF, BackoffPolicy
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.taxonomy import ErrorClass, classify, error_code, explain

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

log = get_logger("worker.report")

#: The reason sent when SageMaker refuses a failure's own reason (the worker's log keeps the original).
PLAIN_FAILURE_REASON = "The callback step failed; SageMaker refused the worker's failure reason (see the worker's log)."


class ReportResult(StrEnum):
    """What became of a report."""

    ACCEPTED = "accepted"
    """SageMaker recorded the outcome (or replayed an identical earlier request)."""
    ALREADY_DONE = "already_done"
    """The step already had an outcome (ConflictException)."""
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a result name, not a secret
    """SageMaker does not know the token (ResourceNotFound)."""
    REJECTED = "rejected"
    """SageMaker refused the request's own content (ValidationException)."""


class Reporter:
    """Sends outcomes to SageMaker."""

    def __init__(
        self,
        client: SageMakerClient,
        backoff: BackoffPolicy | None = None,
        max_in_flight: int = 10,
        events: Events = NO_EVENTS,
        gate: SageMakerCalls | None = None,
    ) -> None:
        self.client = client
        self.events = events
        self.gate = gate or SageMakerCalls()
        """The door every SageMaker call of the process goes through (rate limiter, throttling counts)."""
        self.pending = 0
        """Reports under way: outcomes decided and not yet accepted by SageMaker (waits and retries included)."""
        self._backoff = backoff or REPORT_BACKOFF
        self._in_flight = asyncio.Semaphore(max_in_flight)
        """At most this many calls are built at once (the client's connection pool): when thousands of handlers
        finish together, the rest wait here, cheaply, rather than as signed requests queued for a connection."""

    async def report(self, token: str, outcome: Outcome) -> ReportResult:
        """Send ``outcome`` for ``token`` until SageMaker answers definitively. A rejected Success becomes a Failure."""
        self.pending += 1
        started, answered = time.monotonic(), False
        try:
            self.events.publish(ReportStarted(self.pending))
            result = await self._report(token, outcome)
            answered = True
        finally:
            self.pending -= 1
            self.events.publish(ReportEnded(time.monotonic() - started, answered))
        return result

    async def _report(self, token: str, outcome: Outcome) -> ReportResult:
        result, detail = await self._send(token, outcome)
        if result is ReportResult.REJECTED and isinstance(outcome, Success):
            log.error("SageMaker rejected the outputs; reporting a failure instead", error=detail)
            result, detail = await self._send(token, failure(f"SageMaker rejected the step's outputs: {detail}"))
        if result is ReportResult.REJECTED:
            log.error("SageMaker rejected the failure reason; reporting a plain one instead", error=detail)
            # Nothing in the plain reason can be wrong: a refusal of it is not about the content, and the decided
            # answer is kept and retried like any other uncertain error.
            result, detail = await self._send(token, failure(PLAIN_FAILURE_REASON), content_checked=True)
        return result

    async def _send(self, token: str, outcome: Outcome, *, content_checked: bool = False) -> tuple[ReportResult, str]:
        operation = _operation(outcome)
        backoff = self._backoff.start()
        while True:
            try:
                await self._call(token, outcome)
            except Exception as exc:  # noqa: BLE001 - the table classes every error; none escapes the loop
                kind = classify(operation, exc)
                code = error_code(exc)
                self.events.publish(CallFailed("sagemaker", "report", code))
                if kind is ErrorClass.DEFINITIVE:
                    return _DEFINITIVE[code], explain(operation, exc)
                if kind is ErrorClass.INVALID_CONTENT and not content_checked:
                    return ReportResult.REJECTED, f"{code}: {_message(exc)}"
                log.warning("report failed; retrying with the same answer", error=f"{code}: {exc}", error_class=kind)
                await backoff.sleep()
                continue
            return ReportResult.ACCEPTED, ""

    async def _call(self, token: str, outcome: Outcome) -> Any:
        return await self.gate.call(lambda: self._send_once(token, outcome))

    async def _send_once(self, token: str, outcome: Outcome) -> Any:
        async with self._in_flight:
            if isinstance(outcome, Failure):
                return await self.client.send_pipeline_execution_step_failure(**outcome.request(token))
            return await self.client.send_pipeline_execution_step_success(**outcome.request(token))


_DEFINITIVE = {"ConflictException": ReportResult.ALREADY_DONE, "ResourceNotFound": ReportResult.UNKNOWN_TOKEN}


def _operation(outcome: Outcome) -> str:
    return "SendPipelineExecutionStepFailure" if isinstance(outcome, Failure) else "SendPipelineExecutionStepSuccess"


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)
