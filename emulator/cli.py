"""The ``emulate`` command: serve the local SageMaker Pipelines endpoint until SIGINT or SIGTERM.

``add_arguments`` declares the options on a parser (``callback-worker emulate`` and ``python -m
emulator`` share them); ``run`` serves with them and returns the exit status. Every option falls back
to an environment variable when absent:

============================  =====================================================  ===========================
option                        environment                                            default
============================  =====================================================  ===========================
``--host``                    ``CALLBACK_WORKER_EMULATOR_HOST``                      ``127.0.0.1``
``--port``                    ``CALLBACK_WORKER_EMULATOR_PORT``                      ``0`` (a free port, logged)
``--region``                  ``CALLBACK_WORKER_EMULATOR_REGION``, ``AWS_REGION``    ``us-east-1``
``--account-id``              ``CALLBACK_WORKER_EMULATOR_ACCOUNT_ID``                ``123456789012``
``--max-running-executions``  ``CALLBACK_WORKER_EMULATOR_MAX_RUNNING_EXECUTIONS``    no limit
``--throttle-rate``           ``CALLBACK_WORKER_EMULATOR_THROTTLE_RATE``             ``0``
``--error-rate``              ``CALLBACK_WORKER_EMULATOR_ERROR_RATE``                ``0``
``--error-after-rate``        ``CALLBACK_WORKER_EMULATOR_ERROR_AFTER_RATE``          ``0``
``--latency``                 ``CALLBACK_WORKER_EMULATOR_LATENCY``                   ``0`` seconds
``--jitter``                  ``CALLBACK_WORKER_EMULATOR_JITTER``                    ``0`` seconds
``--fault`` (repeatable)      ``CALLBACK_WORKER_EMULATOR_FAULTS`` (``;``-separated)  none
``--seed``                    ``CALLBACK_WORKER_EMULATOR_SEED``                      random
``--stub-steps``              ``CALLBACK_WORKER_EMULATOR_STUB_STEPS`` (``true``)     off
``--stub-values FILE``        ``CALLBACK_WORKER_EMULATOR_STUB_VALUES``               none
``--stub-delay SECONDS``      ``CALLBACK_WORKER_EMULATOR_STUB_DELAY``                ``0.5``
``--rate-limit`` (repeatable) ``CALLBACK_WORKER_EMULATOR_RATE_LIMITS`` (``;``-sep.)  none
============================  =====================================================  ===========================

The region falls back to ``AWS_REGION``, then ``AWS_DEFAULT_REGION``. Callback messages go to SQS as configured
by the standard AWS environment (``AWS_ENDPOINT_URL_SQS``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from callback_worker.emulator.faults import OperationFaults, build_config, env_value, split_specs
from callback_worker.emulator.ratelimit import RateLimiter, split_rate_limits
from callback_worker.emulator.server import DEFAULT_ACCOUNT, DEFAULT_HOST, DEFAULT_REGION, EmulatorServer
from callback_worker.emulator.stubs import DEFAULT_STUB_DELAY, StubConfig, load_stub_values

logger = logging.getLogger("emulator")

_FAULT_OPTIONS = (
    ("throttle_rate", "throttle", "THROTTLE_RATE"),
    ("error_rate", "error", "ERROR_RATE"),
    ("error_after_rate", "error_after", "ERROR_AFTER_RATE"),
    ("latency", "latency", "LATENCY"),
    ("jitter", "jitter", "JITTER"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the emulator's options on ``parser`` (every one optional; see the module documentation)."""
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help="port to listen on (default: a free port, logged at start)")
    parser.add_argument("--region", help=f"region in ARNs (default: AWS_REGION, else {DEFAULT_REGION})")
    parser.add_argument("--account-id", help=f"account in ARNs (default {DEFAULT_ACCOUNT})")
    parser.add_argument(
        "--max-running-executions",
        type=int,
        help="answer StartPipelineExecution with ResourceLimitExceeded while this many run (default: no limit)",
    )
    faults = parser.add_argument_group("fault injection", "for reliability tests; rates are 0 to 1")
    faults.add_argument("--throttle-rate", type=float, help="share of requests answered ThrottlingException")
    faults.add_argument("--error-rate", type=float, help="share of requests answered InternalFailure (500)")
    faults.add_argument(
        "--error-after-rate",
        type=float,
        help="share of requests answered InternalFailure after they took effect",
    )
    faults.add_argument("--latency", type=float, help="seconds added to every request")
    faults.add_argument("--jitter", type=float, help="up to this many more seconds, at random")
    faults.add_argument(
        "--fault",
        action="append",
        metavar="OPERATION:KNOB=VALUE[,...]",
        help="per-operation faults, e.g. SendPipelineExecutionStepSuccess:throttle=0.5,latency=0.1 "
        "(knobs: throttle, error, error_after, latency, jitter)",
    )
    faults.add_argument("--seed", type=int, help="seed of the fault RNG, for reproducible runs")
    faults.add_argument(
        "--rate-limit",
        action="append",
        metavar="OPERATION=RPS",
        help="a token bucket per operation answering ThrottlingException beyond RPS requests per second; "
        "OPERATION may be a pattern such as 'Send*' or '*' (repeatable)",
    )
    stubs = parser.add_argument_group("stubbed steps", "run Training, Processing, ... steps as stubs that succeed")
    stubs.add_argument(
        "--stub-steps", action="store_true", default=None, help="accept the other step types and run them as stubs"
    )
    stubs.add_argument("--stub-values", metavar="FILE", help="JSON: step name -> property path -> value")
    stubs.add_argument(
        "--stub-delay",
        type=float,
        metavar="SECONDS",
        help=f"seconds a stubbed step runs (default {DEFAULT_STUB_DELAY})",
    )


def stub_options(args: argparse.Namespace, environ: Mapping[str, str]) -> StubConfig:
    """The stub configuration; :class:`ValueError` for an unreadable values file or a bad delay."""
    enabled = _option(args, "stub_steps", environ, "STUB_STEPS") or "false"
    values_file = _option(args, "stub_values", environ, "STUB_VALUES")
    delay = float(_option(args, "stub_delay", environ, "STUB_DELAY") or DEFAULT_STUB_DELAY)
    if delay < 0:
        raise ValueError(f"--stub-delay must be 0 or more, not {delay}")
    values = load_stub_values(values_file) if values_file else {}
    return StubConfig(enabled=enabled.lower() in ("true", "1", "yes"), delay=delay, values=values)


def _option(args: argparse.Namespace, name: str, environ: Mapping[str, str], env: str) -> str | None:
    value = getattr(args, name, None)
    return str(value) if value is not None else env_value(environ, env)


def server_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The :class:`EmulatorServer` keyword arguments for ``args``, with environment fallbacks.

    Raises :class:`ValueError` for an invalid number or fault spec.
    """
    region = (
        _option(args, "region", environ, "REGION")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    knobs = {knob: float(_option(args, option, environ, env) or 0.0) for option, knob, env in _FAULT_OPTIONS}
    specs = list(getattr(args, "fault", None) or []) or split_specs(env_value(environ, "FAULTS") or "")
    seed = _option(args, "seed", environ, "SEED")
    limit = _option(args, "max_running_executions", environ, "MAX_RUNNING_EXECUTIONS")
    rates = list(getattr(args, "rate_limit", None) or []) or split_rate_limits(env_value(environ, "RATE_LIMITS") or "")
    return {
        "host": _option(args, "host", environ, "HOST") or DEFAULT_HOST,
        "port": int(_option(args, "port", environ, "PORT") or 0),
        "region": region,
        "account": _option(args, "account_id", environ, "ACCOUNT_ID") or DEFAULT_ACCOUNT,
        "faults": build_config(OperationFaults(**knobs), specs, seed=None if seed is None else int(seed)),
        "max_running_executions": None if limit is None else int(limit),
        "stubs": stub_options(args, environ),
        "rate_limits": RateLimiter.from_specs(rates),
    }


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a clean shutdown, 2 for invalid options."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = server_options(args, os.environ)
    except ValueError as error:
        logger.error("invalid emulator options: %s", error)  # noqa: TRY400 - the message is the whole story
        return 2
    asyncio.run(_serve(options))
    return 0


async def _serve(options: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with EmulatorServer(**options) as server:
            logger.info("SageMaker emulator listening on %s", server.endpoint_url)
            await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    logger.info("SageMaker emulator stopped")
