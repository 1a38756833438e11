"""The composition root: the one place that builds the daemon's object graph from settings, then runs it.

:func:`build_worker` makes every part (queue, leases, reporter, step resolver, router, dispatcher, watch) and hands
them to the :class:`~worker.worker.Worker`; :func:`run_daemon` adds the AWS clients (:mod:`worker.clients`), the queue
check, the health endpoints and the signals, and runs it until it is told to stop.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from callback_worker.config.settings import Settings
from callback_worker.worker.clients import aws_clients, connections
from callback_worker.worker.clock import SYSTEM_CLOCKS, Clocks
from callback_worker.worker.confirm import Confirmer
from callback_worker.worker.dispatch import Dispatcher, RetryPolicy
from callback_worker.worker.endpoints import serve_health
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.events import NO_EVENTS, Events
from callback_worker.worker.handler import Handler
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.logs import get_logger
from callback_worker.worker.preflight import (
    STARTUP_WINDOW,
    Endpoint,
    Finding,
    Level,
    endpoint_of,
    patiently,
    queue_problem,
    region_finding,
)
from callback_worker.worker.probes import lookup_probe, probe_arn, run_probe
from callback_worker.worker.queue import Queue
from callback_worker.worker.queue_advice import parse_redrive, queue_findings
from callback_worker.worker.ratelimit import RateLimiter
from callback_worker.worker.report import Reporter
from callback_worker.worker.requeue import Requeuer
from callback_worker.worker.router import Router, restrict
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.settle import Settler
from callback_worker.worker.signing import FILE_SETTING, Keyring, keyring_for, process_keyring
from callback_worker.worker.sqs import SqsQueue
from callback_worker.worker.step_context import StepResolver
from callback_worker.worker.stopping import Stopper
from callback_worker.worker.tokens import Tokens
from callback_worker.worker.verify import Verifier
from callback_worker.worker.watch import StepWatch
from callback_worker.worker.worker import Parts, Worker, stop_on_signals

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sqs import SQSClient

    from callback_worker.worker.tracing import Tracing

log = get_logger("worker.app")
T = TypeVar("T")


async def check_queue(queue: Queue, sqs: Endpoint, window: float = STARTUP_WINDOW) -> dict[str, Any]:
    """The queue's attributes, reached at the endpoint ``sqs``; ConfigurationError naming the fix when start-up stops
    (at once on what waiting cannot fix, else after ``window`` seconds: :func:`worker.preflight.patiently`)."""
    try:
        return await patiently(queue.attributes, sqs, "SQS GetQueueAttributes", window)
    except Exception as exc:
        problem = queue_problem(exc, queue.url, sqs)
        raise ConfigurationError(f"{problem.subject}: {problem.text}") from exc


async def preflight(
    settings: Settings,
    queue: Queue,
    sqs: SQSClient,
    sagemaker: SageMakerClient,
    *,
    window: float = STARTUP_WINDOW,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """The start-up checks of :mod:`worker.preflight`: the queue's attributes, or ConfigurationError naming the first
    mistake that cannot work; the other findings are logged. ``environ`` tells which endpoints are overridden."""
    sqs_endpoint, sagemaker_endpoint = endpoint_of(sqs, "SQS", environ), endpoint_of(sagemaker, "SAGEMAKER", environ)
    _stop_on([finding for finding in [region_finding(settings.queue_url, sqs_endpoint, environ)] if finding])
    attributes = await check_queue(queue, sqs_endpoint, window)
    arn = probe_arn(attributes.get("QueueArn"), sagemaker_endpoint.region)
    findings = [
        *queue_findings(attributes, settings),
        await run_probe(lookup_probe(sagemaker, settings, arn), sagemaker_endpoint, window),
    ]
    _stop_on(findings)
    for finding in findings:
        if finding.level is Level.WARN:
            log.warning(f"{finding.subject}: {finding.text}")
        elif finding.level is Level.NOTE:
            log.info(f"{finding.subject}: {finding.text}")
    return attributes


def _stop_on(findings: list[Finding]) -> None:
    for finding in findings:
        if finding.level is Level.FAIL:
            raise ConfigurationError(f"{finding.subject}: {finding.text}")


def describe_redrive(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Log fields describing the queue's redrive policy, if it has one."""
    policy = parse_redrive(attributes)
    if policy is None:
        return {"redrive_policy": None}
    return {"max_receive_count": policy.get("maxReceiveCount"), "dead_letter_queue": policy.get("deadLetterTargetArn")}


def build_worker(
    settings: Settings,
    handlers: Mapping[str, Handler],
    sqs: SQSClient,
    sagemaker: SageMakerClient,
    tracing: Tracing | None = None,
) -> Worker:
    """A worker for ``settings`` on these clients (not started): every part built here, and only here. Messages may
    choose only the handlers that ``CALLBACK_WORKER_HANDLERS`` allows, when it is set. ``tracing`` listens to the
    worker's events and traces the two clients' calls."""
    handlers = restrict(handlers, settings.handlers)
    events = Events()
    if tracing is not None:
        events.subscribe(tracing)
        tracing.instrument(sqs)
        tracing.instrument(sagemaker)
    queue = SqsQueue(
        sqs, settings.queue_url, visibility_timeout=settings.visibility_timeout, wait_time=settings.wait_time
    )
    leases = LeaseKeeper(queue, queue.visibility_timeout, events=events)
    invoker = Invoker(threads=settings.concurrency)
    gate = SageMakerCalls(RateLimiter(max_rate=settings.sagemaker_max_rps))  # one per process: every call shares it
    needs_steps = settings.step_context or settings.verify_tokens
    steps = StepResolver(sagemaker, describe=settings.step_context, events=events, gate=gate) if needs_steps else None
    reporter = Reporter(sagemaker, max_in_flight=connections(settings.concurrency), events=events, gate=gate)
    keyring = sealing_keyring(settings)
    dispatcher = build_dispatcher(
        queue=queue,
        leases=leases,
        reporter=reporter,
        router=Router(handlers, settings.handler, settings.handler_argument, settings.routes),
        invoker=invoker,
        retry=RetryPolicy(settings.max_attempts, settings.retry_backoff),
        steps=steps,
        verify=settings.verify_tokens,
        events=events,
        keyring=keyring,
    )
    watch = None
    if steps is not None and settings.verify_tokens:
        watch = StepWatch(steps, dispatcher.tokens, interval=max(5.0, 3 * leases.tick))
    parts = Parts(queue, dispatcher, leases, invoker, handlers, events, gate, watch)
    return Worker(
        parts, concurrency=settings.concurrency, shutdown_grace=settings.shutdown_grace, pollers=settings.pollers
    )


def sealing_keyring(settings: Settings) -> Keyring:
    """The keys that seal and authenticate continuations: the configured ones, else a key of this process alone."""
    keyring = keyring_for(settings)
    if keyring is not None:
        return keyring
    log.warning(
        "no signing key: this process seals its continuations with a key of its own; a continuation another "
        "replica or an earlier process sent runs as a fresh delivery of its token (its state, attempts and any "
        "handed-on answer set aside)",
        setting=FILE_SETTING,
    )
    return process_keyring()


def build_dispatcher(
    *,
    queue: Queue,
    leases: LeaseKeeper,
    reporter: Reporter,
    router: Router,
    invoker: Invoker,
    retry: RetryPolicy,
    steps: StepResolver | None,
    verify: bool,
    clocks: Clocks = SYSTEM_CLOCKS,
    events: Events = NO_EVENTS,
    keyring: Keyring | None = None,
) -> Dispatcher:
    """The dispatcher and the parts it drives, around one replica's memory of tokens. ``leases`` must read
    ``clocks.monotonic``; ``keyring`` seals the links sent and authenticates those received (by default a key of
    this dispatcher alone: it takes back only the links it sent itself)."""
    keyring = keyring if keyring is not None else process_keyring()
    tokens = Tokens()
    settler = Settler(
        queue=queue,
        reporter=reporter,
        requeuer=Requeuer(queue, clocks.wall, keyring),
        tokens=tokens,
        leases=leases,
        steps=steps,
        events=events,
    )
    confirmer = Confirmer(steps, verify=verify, clock=clocks.monotonic, events=events)
    stopper = Stopper(settler=settler, router=router, invoker=invoker, confirmer=confirmer, events=events)
    return Dispatcher(
        leases=leases,
        router=router,
        invoker=invoker,
        retry=retry,
        tokens=tokens,
        settler=settler,
        stopper=stopper,
        verifier=Verifier(confirmer, router, stopper, events=events),
        clocks=clocks,
        events=events,
        keyring=keyring,
    )


async def run_daemon(settings: Settings, handlers: Mapping[str, Handler], stop: asyncio.Event | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT (or ``stop``), then drain and return."""
    stop = stop or asyncio.Event()
    tracing = tracing_from_environment()
    with stop_on_signals(stop), _flushed(tracing):  # signals from the start: a SIGTERM during the queue check too
        async with aws_clients(settings.concurrency) as (sqs, sagemaker):
            worker = build_worker(settings, handlers, sqs, sagemaker, tracing)
            attributes = await _until_stopped(preflight(settings, worker.queue, sqs, sagemaker), stop)
            if attributes is None:
                log.info("stopped before the worker started")
                return
            worker.health.queue_checked()
            log.info(
                "queue ready",
                handlers=sorted(worker.handlers),
                default_handler=settings.handler,
                **describe_redrive(attributes),
            )
            async with AsyncExitStack() as stack:
                if settings.health_port:
                    serving = serve_health(worker, settings.health_host, settings.health_port)
                    log.info("health endpoints ready", port=await stack.enter_async_context(serving))
                settle_startup_objects()
                await worker.run(stop)


def tracing_from_environment(environment: Mapping[str, str] = os.environ) -> Tracing | None:
    """Tracing as the standard ``OTEL_*`` environment asks: on when ``OTEL_TRACES_EXPORTER`` names an exporter
    (``otlp``, ``console``) and the ``otel`` extra is installed; off (and nothing of OpenTelemetry imported) else."""
    exporter = environment.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("", "none"):
        return None
    try:
        from callback_worker.worker.tracing import exporter_for, tracing_for  # noqa: PLC0415 - OpenTelemetry is an optional extra
    except ImportError as exc:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={exporter!r} asks for traces, but OpenTelemetry is not installed: "
            f"install 'sagemaker-callback-worker[otel]' ({exc.name} is missing)"
        ) from None
    try:
        return tracing_for(exporter_for(exporter), environment)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


@contextmanager
def _flushed(tracing: Tracing | None) -> Iterator[None]:
    try:
        yield
    finally:
        if tracing is not None:
            tracing.shutdown()


def settle_startup_objects() -> None:
    """Collect once, then move everything start-up made (modules, botocore's service models, handlers: about a
    hundred thousand objects) out of the garbage collector's sight. A full collection would otherwise walk them all
    (about 60 ms here) every time it runs, and with thousands of messages in flight it runs while they wait."""
    gc.collect()
    gc.freeze()


async def _until_stopped(call: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of ``call``, or None if ``stop`` is set first (``call`` is then cancelled)."""
    work = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if work.done():
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    return None
