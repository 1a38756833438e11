"""Wiring the daemon from settings: AWS clients from the standard environment, handlers, queue check, run."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import NoRegionError

from config.settings import Settings, env_name
from worker.dispatch import RetryPolicy
from worker.errors import ConfigurationError
from worker.handler import Handler
from worker.health import serve_health
from worker.logs import get_logger
from worker.ratelimit import RateLimiter
from worker.registry import restrict
from worker.report import Reporter
from worker.retrying import Backoff, error_code, is_transient
from worker.runtime import FATAL_RECEIVE_CODES, Worker, stop_on_signals
from worker.sagemaker_calls import SageMakerCalls
from worker.sqs import Queue
from worker.step_context import StepResolver

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sqs import SQSClient

log = get_logger("worker.app")
T = TypeVar("T")

#: How long start-up keeps trying to reach the queue before giving up.
STARTUP_ATTEMPTS = 8


def client_config(concurrency: int, user_agent: str) -> AioConfig:
    """Client settings shared by the worker's SQS and SageMaker clients.

    botocore's own retries stay on (standard mode) for single-call blips; the worker adds its own, longer retries on
    top where an answer must get through. Parameter validation is off: the worker checks every limit itself, and
    botocore's checks (minimum lengths only) cost CPU on every call. A fixed ``user_agent`` names the worker in
    CloudTrail and spares botocore rebuilding its structured User-Agent header twice per call (about a tenth of the
    client's CPU time per callback, measured in BENCHMARKS.md).
    """
    return AioConfig(
        user_agent=user_agent,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=connections(concurrency),
        parameter_validation=False,
        connect_timeout=10,
        read_timeout=30,
    )


def sagemaker_config(config: AioConfig) -> AioConfig:
    """The SageMaker client's settings: ``config`` with botocore's own retries off.

    Every SageMaker attempt must pass the worker's rate limiter (:mod:`worker.ratelimit`), which botocore's
    retries would bypass (a throttled call retried at once, unpaced); the worker's reporter and look-ups retry
    transient errors themselves, with backoff, through the limiter.
    """
    return config.merge(AioConfig(retries={"mode": "standard", "total_max_attempts": 1}))


def connections(concurrency: int) -> int:
    """Connections each client may open: one per slot, at least ten, at most two hundred."""
    return max(10, min(concurrency, 200))


def user_agent(session: AioSession) -> str:
    """``sagemaker-callback-worker/VERSION``, the SDK's name and version, Python's and the system's, and ``app/ID``
    when ``AWS_SDK_UA_APP_ID`` (or the profile's ``sdk_ua_app_id``) sets one; botocore appends the session's extra
    part (``botocore/VERSION``) itself."""
    parts = [
        f"sagemaker-callback-worker/{version('sagemaker-callback-worker')}",
        f"{session.user_agent_name}/{session.user_agent_version}",
        f"Python/{platform.python_version()}",
        f"{platform.system()}/{platform.release()}",
    ]
    app_id = session.get_config_variable("user_agent_appid")
    if app_id:
        parts.append(f"app/{app_id}")
    return " ".join(parts)


def region_from_environment() -> str | None:
    """``AWS_REGION``, which botocore itself does not read (it reads ``AWS_DEFAULT_REGION`` and profiles).

    Containers commonly set only ``AWS_REGION`` (the other SDKs' name); None lets botocore decide as usual.
    """
    return os.environ.get("AWS_REGION") or None


@asynccontextmanager
async def aws_clients(concurrency: int) -> AsyncIterator[tuple[SQSClient, SageMakerClient]]:
    """SQS and SageMaker clients configured from the standard AWS environment."""
    session = get_session()
    config = client_config(concurrency, user_agent(session))
    region = region_from_environment()
    async with AsyncExitStack() as stack:
        try:
            sqs = await stack.enter_async_context(session.create_client("sqs", region_name=region, config=config))
            sagemaker = await stack.enter_async_context(
                session.create_client("sagemaker", region_name=region, config=sagemaker_config(config))
            )
        except NoRegionError:
            raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)") from None
        yield sqs, sagemaker


async def check_queue(queue: Queue) -> dict[str, Any]:
    """The queue's attributes; ConfigurationError if the queue cannot be used at all."""
    backoff = Backoff(base=0.5, cap=5.0)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await queue.attributes()
        except Exception as exc:
            code = error_code(exc)
            if code in FATAL_RECEIVE_CODES or not is_transient(exc) or attempt >= STARTUP_ATTEMPTS:
                raise ConfigurationError(
                    f"{env_name('queue_url')}={queue.url!r} cannot be used: {code}: {exc}"
                ) from exc
            log.warning("queue not reachable yet; retrying", error=f"{code}: {exc}")
            await backoff.sleep()


def describe_redrive(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Log fields describing the queue's redrive policy, if it has one."""
    raw = attributes.get("RedrivePolicy")
    if not raw:
        return {"redrive_policy": None}
    policy = json.loads(raw)
    return {"max_receive_count": policy.get("maxReceiveCount"), "dead_letter_queue": policy.get("deadLetterTargetArn")}


def build_worker(
    settings: Settings, handlers: Mapping[str, Handler], sqs: SQSClient, sagemaker: SageMakerClient
) -> Worker:
    """A worker for ``settings`` on these clients (not started). Messages may choose only the handlers that
    ``CALLBACK_WORKER_HANDLERS`` allows, when it is set."""
    handlers = restrict(handlers, settings.handlers)
    queue = Queue(sqs, settings.queue_url, visibility_timeout=settings.visibility_timeout, wait_time=settings.wait_time)
    gate = SageMakerCalls(RateLimiter(max_rate=settings.sagemaker_max_rps))  # one per process: every call shares it
    return Worker(
        queue=queue,
        reporter=Reporter(sagemaker, max_in_flight=connections(settings.concurrency), gate=gate),
        handlers=handlers,
        default_handler=settings.handler,
        handler_argument=settings.handler_argument,
        concurrency=settings.concurrency,
        retry=RetryPolicy(settings.max_attempts, settings.retry_backoff),
        shutdown_grace=settings.shutdown_grace,
        pollers=settings.pollers,
        routes=settings.routes,
        steps=StepResolver(sagemaker, describe=settings.step_context, gate=gate)
        if settings.step_context or settings.verify_tokens
        else None,
        verify=settings.verify_tokens,
    )


async def run_daemon(settings: Settings, handlers: Mapping[str, Handler], stop: asyncio.Event | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT (or ``stop``), then drain and return."""
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):  # from the start: a SIGTERM during the queue check is a clean stop too
        async with aws_clients(settings.concurrency) as (sqs, sagemaker):
            worker = build_worker(settings, handlers, sqs, sagemaker)
            attributes = await _until_stopped(check_queue(worker.queue), stop)
            if attributes is None:
                log.info("stopped before the worker started")
                return
            if not attributes.get("RedrivePolicy"):
                log.warning("the queue has no redrive policy: a message without a callback token is received forever")
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
