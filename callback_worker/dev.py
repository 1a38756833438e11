"""``callback-worker dev``: the local loop without Docker — SQS, the SageMaker emulator and your worker, one command.

An SQS server (moto, in this process) with a queue and its dead-letter queue (a redrive policy as in production), the
SageMaker Pipelines emulator (``--stub-steps`` to run the other step types as stubs), and the worker with the
installed handlers and the ``CALLBACK_WORKER_*`` settings of the environment — the queue URL, the endpoints and the
credentials replaced by the local ones, so that nothing here can reach AWS. It prints the variables that point a
shell at it and a pipeline to paste, then runs until Ctrl-C (or SIGTERM) and drains like ``callback-worker run``.

``callback-worker send-test-message`` pointed at it starts a real one-step pipeline execution on the emulator, so
the worker verifies a real token (:mod:`callback_worker.ops.testpipeline`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Mapping, MutableMapping
from contextlib import AsyncExitStack, ExitStack
from typing import TYPE_CHECKING

from callback_worker.config.settings import Settings, env_name, load_settings
from callback_worker.devguide import guide
from callback_worker.offline import moto_sqs, offline_aws_env
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import Handler
from callback_worker.worker.logs import configure_logging
from callback_worker.worker.registry import load_handlers

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

#: Fixed ports by default, so that the variables exported in another shell stay right across restarts.
DEFAULT_SQS_PORT = 8571
DEFAULT_SAGEMAKER_PORT = 8572
DEFAULT_QUEUE = "callback-worker-dev"
#: Receives before a message moves to the dead-letter queue.
MAX_RECEIVE_COUNT = 5
#: Variables of the user's AWS environment that could lead a client elsewhere than the local servers.
CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN")
CREDENTIAL = "dev"
#: The long poll's seconds unless the user sets CALLBACK_WORKER_WAIT_TIME: Ctrl-C waits for the receive under way.
DEV_WAIT_TIME = "1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``callback-worker dev``."""
    parser.add_argument(
        "--sqs-port", type=int, default=DEFAULT_SQS_PORT, help=f"SQS port (default {DEFAULT_SQS_PORT}; 0: any free)"
    )
    parser.add_argument(
        "--sagemaker-port",
        type=int,
        default=DEFAULT_SAGEMAKER_PORT,
        help=f"SageMaker emulator port (default {DEFAULT_SAGEMAKER_PORT}; 0: any free)",
    )
    parser.add_argument("--queue-name", default=DEFAULT_QUEUE, help=f"the queue's name (default {DEFAULT_QUEUE})")
    parser.add_argument(
        "--stub-steps", action="store_true", help="run the pipeline's other step types (Training, ...) as stubs"
    )


def run_dev(args: argparse.Namespace) -> int:
    """Serve the local loop until SIGINT or SIGTERM; 0 after a clean drain."""
    for sig in (signal.SIGTERM, signal.SIGINT):  # until the worker's loop takes them over: nothing in flight yet
        signal.signal(sig, _exit_cleanly)
    isolate(os.environ)
    os.environ.setdefault(env_name("log_format"), "console")  # a person reads these logs, unless told otherwise
    with ExitStack() as stack:
        try:
            sqs_url = stack.enter_context(moto_sqs(args.sqs_port))
        except OSError as exc:
            raise _taken("--sqs-port", args.sqs_port, exc) from None
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        os.environ["AWS_ENDPOINT_URL_STS"] = sqs_url  # moto serves GetCallerIdentity too: doctor's identity check
        queue_url = create_queues(args.queue_name)
        os.environ[env_name("queue_url")] = queue_url
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        _sqs().set_queue_attributes(
            QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(settings.visibility_timeout)}
        )
        handlers = {name: item.handler for name, item in load_handlers(allow=settings.handlers).items()}
        asyncio.run(_serve(args, settings, handlers, sqs_url))
    print("callback-worker dev: stopped", flush=True)  # noqa: T201 - the person at the terminal
    return 0


def isolate(environ: MutableMapping[str, str]) -> None:
    """Dummy credentials and every endpoint local: the worker and the emulator never reach AWS from here. A short
    long poll, unless the user chose one, so that Ctrl-C stops the loop within a second or two."""
    for name in CLEARED:
        environ.pop(name, None)
    environ.setdefault(env_name("wait_time"), DEV_WAIT_TIME)
    environ.update(offline_aws_env(region=environ.get("AWS_REGION") or "us-east-1", credential=CREDENTIAL))


def create_queues(name: str) -> str:
    """The queue (created, or found) with a redrive policy to a dead-letter queue that only it may name; its URL."""
    sqs = _sqs()
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
    queue_url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    allowed = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [dlq_arn.removesuffix("-dlq")]})
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": allowed})
    return queue_url


async def _serve(args: argparse.Namespace, settings: Settings, handlers: Mapping[str, Handler], sqs_url: str) -> None:
    from callback_worker.emulator.server import EmulatorServer  # noqa: PLC0415 - needs the optional emulator
    from callback_worker.emulator.stubs import StubConfig  # noqa: PLC0415
    from callback_worker.worker.app import run_daemon  # noqa: PLC0415 - the daemon, as `run` starts it

    emulator = EmulatorServer(host="127.0.0.1", port=args.sagemaker_port, stubs=StubConfig(enabled=args.stub_steps))
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(emulator)
        except OSError as exc:
            raise _taken("--sagemaker-port", args.sagemaker_port, exc) from None
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = emulator.endpoint_url
        region = os.environ["AWS_REGION"]
        text = guide(settings, sorted(handlers), sqs_url, emulator.endpoint_url, credential=CREDENTIAL, region=region)
        print(text, flush=True)  # noqa: T201 - the person at the terminal
        await run_daemon(settings, handlers)


def _exit_cleanly(signum: int, _: object) -> None:
    raise SystemExit(0)


def _taken(option: str, port: int, exc: OSError) -> ConfigurationError:
    return ConfigurationError(f"{option} {port}: {exc.strerror or exc}; choose another port, or 0 for any free one")


def _sqs() -> SQSClient:
    import boto3  # noqa: PLC0415 - kept out of the other commands' start-up

    return boto3.client("sqs")
