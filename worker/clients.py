"""The daemon's AWS clients, configured from the standard AWS environment (region, endpoints, credentials)."""

from __future__ import annotations

import os
import platform
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import NoRegionError

from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.preflight import config_problem
from callback_worker.worker.taxonomy import CONFIG_ERRORS

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sqs import SQSClient


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
    region = region_from_environment()
    async with AsyncExitStack() as stack:
        try:
            config = client_config(concurrency, user_agent(session))
            sqs = await stack.enter_async_context(session.create_client("sqs", region_name=region, config=config))
            sagemaker = await stack.enter_async_context(
                session.create_client("sagemaker", region_name=region, config=sagemaker_config(config))
            )
        except NoRegionError:
            raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)") from None
        except CONFIG_ERRORS as exc:
            raise ConfigurationError(config_problem(exc)) from None
        yield sqs, sagemaker
