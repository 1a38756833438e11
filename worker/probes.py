"""SageMaker's permission probes: harmless calls about a made-up execution or token, each telling one permission.

Telling "denied" from "not found" needs no real resource: SageMaker authorises a call before it looks the resource
up, so a look-up of a made-up execution (:data:`PROBE_PIPELINE`) answers ``AccessDenied`` without the permission and
``ResourceNotFound`` with it. A probe is tried within the start-up window of :mod:`worker.preflight` when a setting
needs its permission (token verification, step context), once otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.preflight import (
    Endpoint,
    Finding,
    Level,
    credentials_problem,
    message,
    patiently,
    unanswered,
)
from callback_worker.worker.taxonomy import StartupFault, error_code, startup_fault

#: The pipeline of the made-up execution the SageMaker look-up asks about (no such pipeline need exist). A policy that
#: allows only named pipelines must allow this one too, for the check.
PROBE_PIPELINE = "callback-worker-preflight"
PROBE_EXECUTION = "000000000000"
#: An account for ARNs when neither the queue nor STS tells one.
UNKNOWN_ACCOUNT = "000000000000"
#: The answer that proves a probe's call allowed.
ALLOWED = "ResourceNotFound"


def probe_arn(queue_arn: str | None, region: str, account: str | None = None) -> str:
    """A made-up execution ARN in the queue's partition and account (or ``account``), in ``region``."""
    parts = (queue_arn or "").split(":")
    partition = parts[1] if len(parts) > 4 else "aws"  # arn:PARTITION:sqs:REGION:ACCOUNT:NAME
    owner = account or (parts[4] if len(parts) > 4 and parts[4] else UNKNOWN_ACCOUNT)
    return f"arn:{partition}:sagemaker:{region}:{owner}:pipeline/{PROBE_PIPELINE}/execution/{PROBE_EXECUTION}"


@dataclass(frozen=True, slots=True)
class Probe:
    """A harmless SageMaker call about something made up: which permission it tells, and who needs it."""

    operation: str
    call: Callable[[], Awaitable[object]]
    needed_by: str
    required: bool
    resource: str


async def run_probe(probe: Probe, sagemaker: Endpoint, window: float = 0.0) -> Finding:
    """The finding of one probe: allowed (``ResourceNotFound``), or the error start-up stopped on. A required probe
    is tried within ``window`` seconds (:func:`worker.preflight.patiently`); one nothing needs, once."""
    try:
        await patiently(lambda: _allowed(probe), sagemaker, f"SageMaker {probe.operation}", window * probe.required)
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        return probe_finding(probe, exc, sagemaker)
    return Finding(Level.OK, "SageMaker", f"{probe.operation} allowed ({probe.needed_by})")


async def _allowed(probe: Probe) -> None:
    try:
        await probe.call()
    except ClientError as exc:
        if error_code(exc) != ALLOWED:
            raise


def probe_finding(probe: Probe, exc: BaseException, sagemaker: Endpoint) -> Finding:
    """What a probe's error says: only ``ResourceNotFound`` proves the call allowed; any other answer is a FAIL when
    a setting needs the permission, a WARN otherwise."""
    fault, code = startup_fault(exc), error_code(exc)
    failing = Level.FAIL if probe.required else Level.WARN
    if code == ALLOWED:
        return Finding(Level.OK, "SageMaker", f"{probe.operation} allowed ({probe.needed_by})")
    if (found := credentials_problem(exc)) is not None:
        return Finding(failing, found.subject, found.text)
    if fault is StartupFault.DENIED:
        return Finding(
            failing,
            "SageMaker",
            f"denied {probe.operation} ({code}), which {probe.needed_by} needs; grant sagemaker:{probe.operation} "
            f"on {probe.resource} (a role limited to named pipelines must also allow pipeline/{PROBE_PIPELINE}, "
            "the made-up one the check asks about)",
        )
    if fault in (StartupFault.NO_ANSWER, StartupFault.NOT_AWS):
        what = unanswered(fault, exc, sagemaker, "a SageMaker", probe.needed_by)
        return Finding(failing, "SageMaker", f"{what}; {sagemaker.fix()}")
    then = "start again later" if probe.required else "the worker waits it out"
    what = "an outage" if fault is StartupFault.OUTAGE else "cannot tell whether it is allowed"
    return Finding(
        failing,
        "SageMaker",
        f"{probe.operation}: {code} at {sagemaker}, which {probe.needed_by} needs: {message(exc)}; {what}; {then}",
    )


def lookup_probe(sagemaker: Any, settings: Settings, arn: str) -> Probe:
    """``ListPipelineExecutionSteps`` of a made-up execution: required while tokens are verified or steps looked up."""
    needed_by = _lookup_settings(settings) or "no setting here (only handlers' own look-ups)"
    return Probe(
        "ListPipelineExecutionSteps",
        lambda: sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn, MaxResults=1),
        needed_by,
        required=bool(_lookup_settings(settings)),
        resource=executions_resource(arn),
    )


def _lookup_settings(settings: Settings) -> str:
    on = [name for name in ("verify_tokens", "step_context") if getattr(settings, name)]
    return " and ".join(f"{env_name(name)}=true" for name in on)


def executions_resource(arn: str) -> str:
    """The execution ARNs of every pipeline in ``arn``'s account and region."""
    return arn.split(":pipeline/", maxsplit=1)[0] + ":pipeline/*/execution/*"
