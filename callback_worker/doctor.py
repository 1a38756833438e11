"""``callback-worker doctor``: every start-up check of ``run`` and a few more, each finding one line with its fix.

In order: the settings; the AWS region, the endpoints, the credentials (found where, and as whom: STS
``GetCallerIdentity``); the queue (reachable, exists, its attributes against the settings); SageMaker (reachable, and
the permissions token verification, step look-ups and reports need, told apart by harmless calls about a made-up
execution and a made-up token: ``ResourceNotFound`` means allowed; :mod:`callback_worker.worker.probes`); every
handler (loaded, or its error — a broken plugin hides none of the others); ``CALLBACK_WORKER_*`` variables that name
no setting. Exit 1 when a finding is one ``run`` would stop on (``FAIL``), else 0. The checks themselves are
:mod:`callback_worker.worker.preflight`'s, made once each: where ``run`` would try again within its start-up window,
``doctor`` reports what it sees now.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiobotocore.session import AioSession, get_session
from botocore.exceptions import NoRegionError

from callback_worker.config.errors import SettingsError
from callback_worker.config.settings import Settings, env_name, load_settings
from callback_worker.config.unknown import UnknownSetting, known_names, open_namespaces, unknown_settings
from callback_worker.worker.clients import client_config, region_from_environment, sagemaker_config, user_agent
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.preflight import (
    CALL_TIMEOUT,
    NO_CREDENTIALS,
    Endpoint,
    Finding,
    Level,
    config_finding,
    credentials_problem,
    endpoint_of,
    queue_problem,
    region_finding,
    region_source,
)
from callback_worker.worker.probes import Probe, executions_resource, lookup_probe, probe_arn, run_probe
from callback_worker.worker.queue_advice import queue_findings
from callback_worker.worker.registry import load_each, registrations
from callback_worker.worker.signing import FILE_SETTING, keyring_for
from callback_worker.worker.taxonomy import CONFIG_ERRORS, StartupFault, startup_fault

#: A made-up callback token (SageMaker's are ten random letters and digits): the report probes answer it.
PROBE_TOKEN = "Preflight0"  # noqa: S105 - not a secret: a token no step has
PROBE_REASON = "callback-worker doctor: a permission check with a made-up token"


def run_doctor(_: object = None) -> int:
    """Print every finding, then a summary; 1 if any finding would stop ``run``, else 0."""
    findings = diagnose()
    for finding in findings:
        print(finding.line())  # noqa: T201 - command output
    failed = sum(finding.level is Level.FAIL for finding in findings)
    warned = sum(finding.level is Level.WARN for finding in findings)
    verdict = f"{failed} problem(s) `run` would stop on" if failed else "`run` can start"
    print(f"\n{verdict}; {warned} warning(s)")  # noqa: T201
    return 1 if failed else 0


def diagnose() -> list[Finding]:
    """Every finding, in the order of the module's docstring."""
    settings, findings = read_settings()
    findings += asyncio.run(aws_findings(settings))
    findings += handler_findings(settings)
    findings += [Finding(Level.WARN, "settings", unknown.message()) for unknown in _unknown()]
    return findings


def read_settings() -> tuple[Settings | None, list[Finding]]:
    """The settings, or None and the one line ``run`` would stop with."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        return None, [Finding(Level.FAIL, "settings", str(exc))]
    lookups = "on" if settings.verify_tokens else "off"
    read = Finding(Level.OK, "settings", f"read; queue {settings.queue_url}, token verification {lookups}")
    return settings, [read, signing_finding(settings)]


def signing_finding(settings: Settings) -> Finding:
    """The signing keys: read as ``run`` reads them, or why not; a warning when none is set."""
    try:
        keyring = keyring_for(settings)
    except ConfigurationError as exc:
        return Finding(Level.FAIL, "signing key", str(exc))
    if keyring is None:
        return Finding(
            Level.WARN,
            "signing key",
            "none set: each process seals its continuations with a key of its own, so a Retry's wake-up another "
            f"replica or a restarted worker receives runs from the start; set {FILE_SETTING} (one key a line: "
            "openssl rand -base64 32) whenever more than one replica runs or restarts happen while steps wait",
        )
    return Finding(Level.OK, "signing key", f"{len(keyring.keys)} key(s) read; key {keyring.signer.id} signs")


async def aws_findings(settings: Settings | None) -> list[Finding]:
    """Region, endpoints, credentials, identity, queue and SageMaker."""
    session = get_session()
    try:
        async with _clients(session) as (sqs, sagemaker, sts):
            return await _with_clients(session, settings, sqs, sagemaker, sts)
    except NoRegionError:
        return [Finding(Level.FAIL, "region", "none set; set AWS_REGION (or AWS_DEFAULT_REGION)")]
    except CONFIG_ERRORS as exc:  # no client can be made, so no call: the line `run` stops with, then the rest
        return [config_finding(exc)]


@asynccontextmanager
async def _clients(session: AioSession) -> AsyncIterator[tuple[Any, Any, Any]]:
    config = client_config(1, user_agent(session))
    region = region_from_environment()
    async with AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(session.create_client("sqs", region_name=region, config=config))
        sagemaker = await stack.enter_async_context(
            session.create_client("sagemaker", region_name=region, config=sagemaker_config(config))
        )
        sts = await stack.enter_async_context(session.create_client("sts", region_name=region, config=config))
        yield sqs, sagemaker, sts


async def _with_clients(
    session: AioSession, settings: Settings | None, sqs: Any, sagemaker: Any, sts: Any
) -> list[Finding]:
    sqs_at, sagemaker_at = endpoint_of(sqs, "SQS"), endpoint_of(sagemaker, "SAGEMAKER")
    findings = [
        Finding(Level.OK, "region", f"{sqs_at.region} (from {region_source()})"),
        Finding(Level.OK, "SQS", f"endpoint {sqs_at}"),
        Finding(Level.OK, "SageMaker", f"endpoint {sagemaker_at}"),
        await _credentials(session),
    ]
    if findings[-1].level is Level.FAIL:  # every call below needs them: said once, and no call made
        region = region_finding(settings.queue_url, sqs_at) if settings is not None else None
        return findings + ([region] if region else [])
    identity, account = await identity_finding(sts)
    attributes: dict[str, str] = {}
    checked: list[Finding] = []
    if settings is not None:
        checked, attributes = await queue_check(settings, sqs, sqs_at)
    checked += await sagemaker_findings(settings, sagemaker, sagemaker_at, attributes.get("QueueArn"), account)
    return [*findings, judged_identity(identity, checked), *checked]


def judged_identity(identity: Finding, checked: Sequence[Finding]) -> Finding:
    """STS refusing the credentials is a note when SQS and SageMaker took them: the worker itself never calls STS
    (a local setup's STS, or none, may know nothing of its credentials)."""
    took = {finding.subject for finding in checked if finding.level is Level.OK}
    if identity.level is not Level.FAIL or not {"queue", "SageMaker"} <= took:
        return identity
    return Finding(
        Level.NOTE,
        "identity",
        f"STS {identity.text.split(';')[0]}, but SQS and SageMaker accepted the credentials (the worker never calls "
        "STS); set AWS_ENDPOINT_URL_STS to ask elsewhere",
    )


async def _credentials(session: AioSession) -> Finding:
    try:
        credentials = await session.get_credentials()
    except Exception as exc:  # noqa: BLE001 - a provider that fails is a finding
        return credentials_problem(exc) or Finding(Level.FAIL, "credentials", f"cannot be read: {exc}")
    if credentials is None:
        return NO_CREDENTIALS
    return Finding(Level.OK, "credentials", f"found ({credentials.method})")


async def identity_finding(sts: Any) -> tuple[Finding, str | None]:
    """Who the credentials are (STS ``GetCallerIdentity``), and the account; the worker itself never calls STS."""
    sts_at = endpoint_of(sts, "STS")
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            identity = await sts.get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        if (found := credentials_problem(exc)) is not None:
            return found, None
        why = "no answer" if startup_fault(exc) is StartupFault.NO_ANSWER else f"{type(exc).__name__}: {exc}"
        return Finding(
            Level.NOTE, "identity", f"cannot tell who ({why} at {sts_at}); set AWS_ENDPOINT_URL_STS to ask elsewhere"
        ), None
    account = str(identity["Account"])
    return Finding(Level.OK, "identity", f"{identity['Arn']} (account {account})"), account


async def queue_check(settings: Settings, sqs: Any, sqs_at: Endpoint) -> tuple[list[Finding], dict[str, str]]:
    """The queue's findings and attributes (empty when it could not be read)."""
    region = region_finding(settings.queue_url, sqs_at)
    if region is not None:
        return [region], {}
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            response = await sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["All"])
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        return [queue_problem(exc, settings.queue_url, sqs_at)], {}
    attributes = {str(key): str(value) for key, value in response.get("Attributes", {}).items()}
    reached = Finding(Level.OK, "queue", f"{settings.queue_url} exists and answers")
    return [reached, *queue_findings(attributes, settings)], attributes


async def sagemaker_findings(
    settings: Settings | None, sagemaker: Any, sagemaker_at: Endpoint, queue_arn: str | None, account: str | None
) -> list[Finding]:
    """One finding per permission the worker's SageMaker calls need."""
    arn = probe_arn(queue_arn, sagemaker_at.region, account)
    probes = report_probes(sagemaker, arn)
    if settings is not None:
        probes.insert(0, lookup_probe(sagemaker, settings, arn))
        if settings.step_context:
            probes.insert(1, describe_probe(sagemaker, arn))
    findings: list[Finding] = []
    for probe in probes:
        findings.append(await run_probe(probe, sagemaker_at))
        if findings[-1].text.startswith("no answer"):  # the other probes would say the same
            break
    return findings


def describe_probe(sagemaker: Any, arn: str) -> Probe:
    """``DescribePipelineExecution`` of a made-up execution (step context)."""
    return Probe(
        "DescribePipelineExecution",
        lambda: sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn),
        f"{env_name('step_context')}=true",
        required=True,
        resource=executions_resource(arn),
    )


def report_probes(sagemaker: Any, arn: str) -> list[Probe]:
    """Answers to a made-up token (no step has it, so nothing is answered). A denial warns rather than fails: which
    execution a token belongs to is only known once SageMaker has found it."""
    return [
        Probe(
            "SendPipelineExecutionStepSuccess",
            lambda: sagemaker.send_pipeline_execution_step_success(CallbackToken=PROBE_TOKEN),
            "answering steps",
            required=False,
            resource=executions_resource(arn),
        ),
        Probe(
            "SendPipelineExecutionStepFailure",
            lambda: sagemaker.send_pipeline_execution_step_failure(
                CallbackToken=PROBE_TOKEN, FailureReason=PROBE_REASON
            ),
            "answering steps",
            required=False,
            resource=executions_resource(arn),
        ),
    ]


def handler_findings(settings: Settings | None) -> list[Finding]:
    """One finding per discovered handler (loaded, or why not), then any handler the settings name but nobody has."""
    allow = settings.handlers if settings is not None else None  # as `run`: nothing outside the allowlist is imported
    results = load_each(allow=allow)  # a name claimed twice: both registrations, each naming the other
    findings = [
        Finding(Level.FAIL, f"handler {source.name}", str(result))
        if isinstance(result, Exception)
        else Finding(Level.OK, f"handler {source.name}", source.describe())
        for source, result in results
    ]
    if settings is not None:
        findings += missing_handlers(settings, sorted({source.name for source, _ in results}))
    return findings


def missing_handlers(settings: Settings, installed: Sequence[str]) -> list[Finding]:
    """A FAIL for each handler that the settings name and no installed distribution provides."""
    named = [("handler", settings.handler)] + [("routes", handler) for handler in settings.routes.values()]
    named += [("handlers", handler) for handler in settings.handlers or ()]
    available = ", ".join(installed) or "none"
    return [
        Finding(
            Level.FAIL,
            "settings",
            f"{env_name(setting)} names handler {handler!r}, which is not installed; available: {available}",
        )
        for setting, handler in named
        if handler is not None and handler not in installed
    ]


def _unknown() -> list[UnknownSetting]:
    known = known_names()
    namespaces = open_namespaces((source.name for source in registrations()), known)
    return list(unknown_settings(os.environ, known, namespaces))
