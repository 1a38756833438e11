"""Start-up checks: the mistakes that waiting cannot fix, each told in one line with its fix before the first receive.

After start-up every AWS error the daemon meets is transient (:mod:`worker.taxonomy`): it holds someone's answers, so
it keeps them and tries again. Before the first receive it holds nothing, so a mistake of configuration — no
credentials, credentials the service refuses, an endpoint where nobody answers, a queue URL of another region, a queue
that does not exist, a FIFO queue, SageMaker refusing the look-ups that token verification needs — is told at once
rather than retried as if it were an outage. An outage at start-up (throttling, a 5xx) is still waited out, a few
times. ``callback-worker run`` stops (exit 2, one line) on the first :attr:`Level.FAIL` finding and logs the others;
``callback-worker doctor`` makes the same checks and more, and lists every finding.

Telling "denied" from "not found" needs no real resource: SageMaker authorises a call before it looks the resource
up, so a look-up of a made-up execution (:data:`PROBE_PIPELINE`) answers ``AccessDenied`` without the permission and
``ResourceNotFound`` with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.taxonomy import error_code, is_outage

#: Seconds one start-up call may take, connection and botocore's own retries included: an endpoint that does not
#: answer stops start-up within this, instead of being retried as if it were an outage.
CALL_TIMEOUT = 10.0
#: The pipeline of the made-up execution the SageMaker look-up asks about (no such pipeline need exist). A policy that
#: allows only named pipelines can allow this one too, for the check.
PROBE_PIPELINE = "callback-worker-preflight"
PROBE_EXECUTION = "000000000000"
#: An account for ARNs when neither the queue nor STS tells one.
UNKNOWN_ACCOUNT = "000000000000"

NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"})
DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
#: The service does not accept the credentials themselves (unknown key, wrong secret, expired session).
CREDENTIALS_REFUSED = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
    }
)
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound)
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_QUEUE_HOST = re.compile(rf"(?:^|\.)sqs(?:-fips)?\.(?P<region>{_REGION})\.|^(?P<legacy>{_REGION})\.queue\.amazonaws\.")


class Level(StrEnum):
    """How much a finding matters: ``FAIL`` stops ``run``; ``WARN`` deserves a fix; ``NOTE`` is for information."""

    OK = "ok"
    NOTE = "note"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: what, about which part, and the fix where one is needed — one line."""

    level: Level
    subject: str
    text: str

    def line(self) -> str:
        return f"{self.level.value:<4}  {self.subject}: {self.text}"


NO_CREDENTIALS = Finding(
    Level.FAIL,
    "credentials",
    "none found (environment, AWS_PROFILE, web identity, container or instance role); set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a client sends its calls: the service's name, the URL, the variable that set it, the region."""

    service: str
    url: str
    source: str
    region: str

    def __str__(self) -> str:
        return f"{self.url} ({self.source})"

    def fix(self) -> str:
        """Where to look when nobody answers at this endpoint."""
        if self.source.startswith("AWS_ENDPOINT_URL"):
            return f"check {self.source}"
        return "check the network: a VPC endpoint or a NAT route to the service, or HTTPS_PROXY"


def endpoint_of(client: Any, variable: str, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint of an aiobotocore client; ``variable`` is the service's part of ``AWS_ENDPOINT_URL_<VARIABLE>``."""
    own = f"AWS_ENDPOINT_URL_{variable}"
    source = own if environ.get(own) else "AWS_ENDPOINT_URL" if environ.get("AWS_ENDPOINT_URL") else ""
    region = str(client.meta.region_name)
    service = str(client.meta.service_model.service_id)
    return Endpoint(service, str(client.meta.endpoint_url), source or f"the default for {region}", region)


def region_source(environ: Mapping[str, str] = os.environ) -> str:
    """The variable the clients' region came from, as botocore and :mod:`worker.clients` read them."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name):
            return name
    return "the AWS profile"


def queue_region(url: str) -> str | None:
    """The region an AWS queue URL names (``sqs.REGION.amazonaws.com``, VPC endpoint and legacy forms); None else."""
    host = urlsplit(url).hostname or ""
    if host == "queue.amazonaws.com":
        return "us-east-1"
    found = _QUEUE_HOST.search(host)
    return (found.group("region") or found.group("legacy")) if found else None


def region_finding(queue_url: str, sqs: Endpoint) -> Finding | None:
    """FAIL when the queue URL names another region than the clients use: SQS would say the queue does not exist."""
    region = queue_region(queue_url)
    if region is None or region == sqs.region:
        return None
    return Finding(
        Level.FAIL,
        "region",
        f"{env_name('queue_url')} is a queue in {region}, but the AWS clients use {sqs.region} "
        f"(from {region_source()}); set AWS_REGION={region}",
    )


def credentials_problem(exc: BaseException) -> Finding | None:
    """FAIL when no credentials could be found or read, or the service refused them; None for any other error."""
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return Finding(Level.FAIL, "credentials", f"cannot be read: {exc}; fix the credentials chain's settings")
    code = error_code(exc)
    if code in CREDENTIALS_REFUSED:
        return Finding(
            Level.FAIL,
            "credentials",
            f"refused ({code}: {_message(exc)}); use valid credentials (a fresh session token, the right secret)",
        )
    return None


def no_answer(exc: BaseException) -> bool:
    """True when the call got no answer at all (refused or timed-out connection, unknown host): not an outage's 5xx."""
    return not isinstance(exc, ClientError) and is_outage(exc)


def queue_problem(exc: BaseException, queue_url: str, sqs: Endpoint) -> Finding | None:
    """FAIL with its fix for a ``GetQueueAttributes`` error that waiting will not fix; None for an outage."""
    code = error_code(exc)
    setting = env_name("queue_url")
    if found := credentials_problem(exc):
        return found
    if no_answer(exc):
        return Finding(Level.FAIL, "SQS", f"no answer at {sqs}: {_message(exc)}; {sqs.fix()}")
    if code in NO_QUEUE:
        return Finding(
            Level.FAIL,
            "queue",
            f"{queue_url} does not exist in {sqs.region} at {sqs.url}; check {setting}, and AWS_REGION "
            "(a queue lives in one region)",
        )
    if code in DENIED:
        return Finding(
            Level.FAIL,
            "queue",
            f"SQS denied GetQueueAttributes on {queue_url} ({code}); grant the worker's role sqs:ReceiveMessage, "
            "DeleteMessage, ChangeMessageVisibility, GetQueueAttributes and SendMessage on it",
        )
    if is_outage(exc):
        return None
    return Finding(Level.FAIL, "queue", f"{setting}={queue_url!r} cannot be used: {code}: {_message(exc)}")


def queue_findings(attributes: Mapping[str, str], settings: Settings) -> list[Finding]:
    """What the queue's attributes mean for the worker, one finding each."""
    findings = [_fifo(attributes), _redrive(attributes), _visibility(attributes, settings), _encryption(attributes)]
    delay = int(attributes.get("DelaySeconds", "0") or 0)
    if delay:
        findings.append(Finding(Level.NOTE, "queue", f"DelaySeconds={delay}: each callback waits that long first"))
    return [finding for finding in findings if finding is not None]


def _fifo(attributes: Mapping[str, str]) -> Finding | None:
    if attributes.get("FifoQueue", "false").lower() != "true":
        return None
    return Finding(
        Level.FAIL,
        "queue",
        "a FIFO queue cannot take callback messages (SageMaker sends no MessageGroupId; continuations use "
        f"DelaySeconds); point {env_name('queue_url')} at a standard queue",
    )


def _redrive(attributes: Mapping[str, str]) -> Finding:
    policy = parse_redrive(attributes)
    if policy is None:
        return Finding(
            Level.WARN,
            "queue",
            "no redrive policy: a message no worker can read is received forever; give the queue a dead-letter "
            "queue (RedrivePolicy with maxReceiveCount)",
        )
    count, target = policy.get("maxReceiveCount"), policy.get("deadLetterTargetArn")
    return Finding(Level.OK, "queue", f"redrive policy: after {count} receives to {target}")


def parse_redrive(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The queue's redrive policy, or None when it has none (or one that is not a JSON object)."""
    try:
        policy = json.loads(attributes.get("RedrivePolicy") or "null")
    except ValueError:
        return None
    return policy if isinstance(policy, dict) else None


def _visibility(attributes: Mapping[str, str], settings: Settings) -> Finding:
    queue = attributes.get("VisibilityTimeout", "?")
    setting = f"{env_name('visibility_timeout')}={settings.visibility_timeout}"
    if queue == str(settings.visibility_timeout):
        return Finding(Level.OK, "queue", f"VisibilityTimeout {queue} s, as {setting}")
    return Finding(
        Level.NOTE,
        "queue",
        f"VisibilityTimeout is {queue} s; the worker asks for {setting} s on each receive (the queue's own value "
        "applies only to other consumers); set both alike to avoid the confusion",
    )


def _encryption(attributes: Mapping[str, str]) -> Finding | None:
    key = attributes.get("KmsMasterKeyId")
    if key:
        return Finding(
            Level.NOTE,
            "queue",
            f"encrypted with KMS key {key}: the worker's role needs kms:Decrypt and kms:GenerateDataKey on it, and "
            "the key policy must allow the role (deploy/iam/kms-policy.json)",
        )
    if attributes.get("SqsManagedSseEnabled", "false").lower() == "true":
        return Finding(Level.OK, "queue", "encrypted by SQS (SSE-SQS): no key permissions needed")
    return None


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


async def run_probe(probe: Probe, sagemaker: Endpoint) -> Finding:
    """The finding of one probe: allowed (``ResourceNotFound``), denied, unreachable, or undecided."""
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            await probe.call()
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        return probe_finding(probe, exc, sagemaker)
    return Finding(Level.OK, "SageMaker", f"{probe.operation} allowed ({probe.needed_by})")


def probe_finding(probe: Probe, exc: BaseException, sagemaker: Endpoint) -> Finding:
    """What a probe's error says: only ``ResourceNotFound`` proves the call is allowed."""
    code = error_code(exc)
    failing = Level.FAIL if probe.required else Level.WARN
    if code == "ResourceNotFound":
        return Finding(Level.OK, "SageMaker", f"{probe.operation} allowed ({probe.needed_by})")
    if (found := credentials_problem(exc)) is not None:
        return Finding(failing, found.subject, found.text)
    if code in DENIED:
        return Finding(
            failing,
            "SageMaker",
            f"denied {probe.operation} ({code}), which {probe.needed_by} needs; grant sagemaker:{probe.operation} "
            f"on {probe.resource}",
        )
    if no_answer(exc):
        return Finding(
            failing,
            "SageMaker",
            f"no answer at {sagemaker}, which {probe.needed_by} needs: {_message(exc)}; {sagemaker.fix()}",
        )
    if is_outage(exc):
        return Finding(Level.WARN, "SageMaker", f"{probe.operation}: {code} (an outage; the worker waits it out)")
    return Finding(
        Level.NOTE, "SageMaker", f"{probe.operation}: {code}: {_message(exc)}; cannot tell whether it is allowed"
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


def _message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc) or type(exc).__name__
