"""Reporting outcomes to SageMaker: SendPipelineExecutionStepSuccess / Failure, with retries and error classes.

Transient errors (throttling, 5xx, connection trouble) are retried with jittered backoff for as long as it takes —
the caller keeps the message leased meanwhile, and cancelling the call (shutdown) leaves the message to be
redelivered. ``ConflictException`` means the step already has an outcome (another replica, or an earlier delivery,
answered it); ``ResourceNotFound`` means SageMaker does not know the token.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker.events import NO_EVENTS, CallFailed, Events
from worker.logs import get_logger
from worker.outcome import Failure, Outcome, Success, failure
from worker.retrying import REPORT_BACKOFF, BackoffPolicy, error_code, is_transient

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

log = get_logger("worker.report")


class ReportResult(StrEnum):
    """What became of a report."""

    ACCEPTED = "accepted"
    """SageMaker recorded the outcome (or replayed an identical earlier request)."""
    ALREADY_DONE = "already_done"
    """The step already had an outcome (ConflictException)."""
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a result name, not a secret
    """SageMaker does not know the token (ResourceNotFound)."""
    REJECTED = "rejected"
    """SageMaker refused the request itself (for example ValidationException)."""


class Reporter:
    """Sends outcomes to SageMaker."""

    def __init__(
        self,
        client: SageMakerClient,
        backoff: BackoffPolicy | None = None,
        max_in_flight: int = 10,
        events: Events = NO_EVENTS,
    ) -> None:
        self.client = client
        self.events = events
        self._backoff = backoff or REPORT_BACKOFF
        self._in_flight = asyncio.Semaphore(max_in_flight)
        """At most this many calls are built at once (the client's connection pool): when thousands of handlers
        finish together, the rest wait here, cheaply, rather than as signed requests queued for a connection."""

    async def report(self, token: str, outcome: Outcome) -> ReportResult:
        """Send ``outcome`` for ``token`` until SageMaker answers definitively. A rejected Success becomes a Failure."""
        result, detail = await self._send(token, outcome)
        if result is ReportResult.REJECTED and isinstance(outcome, Success):
            log.error("SageMaker rejected the outputs; reporting a failure instead", error=detail)
            result, detail = await self._send(token, failure(f"SageMaker rejected the step's outputs: {detail}"))
        if result is ReportResult.REJECTED:
            log.error("SageMaker rejected the failure report", error=detail)
        return result

    async def _send(self, token: str, outcome: Outcome) -> tuple[ReportResult, str]:
        backoff = self._backoff.start()
        while True:
            try:
                await self._call(token, outcome)
            except ClientError as exc:
                code = error_code(exc)
                self.events.publish(CallFailed("sagemaker", "report", code))
                if is_transient(exc):
                    log.warning("report failed; retrying", error=code)
                    await backoff.sleep()
                    continue
                return _classify(code), str(exc)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                code = type(exc).__name__
                self.events.publish(CallFailed("sagemaker", "report", code))
                log.warning("report failed; retrying", error=f"{code}: {exc}")
                await backoff.sleep()
                continue
            return ReportResult.ACCEPTED, ""

    async def _call(self, token: str, outcome: Outcome) -> Any:
        async with self._in_flight:
            if isinstance(outcome, Failure):
                return await self.client.send_pipeline_execution_step_failure(**outcome.request(token))
            return await self.client.send_pipeline_execution_step_success(**outcome.request(token))


def _classify(code: str) -> ReportResult:
    if code == "ConflictException":
        return ReportResult.ALREADY_DONE
    if code == "ResourceNotFound":
        return ReportResult.UNKNOWN_TOKEN
    return ReportResult.REJECTED
