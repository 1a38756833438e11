"""SQS for the reliability tier: the backends (moto server, LocalStack), queues with a DLQ, depth, waiting."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType

REPO = Path(__file__).resolve().parents[2]
LOCALSTACK_START = REPO / "scripts" / "localstack-start"
#: The test process's own clients retry a lot: they must outlive the faults they help to inject.
DRIVER_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10}, connect_timeout=5, read_timeout=60)
DEPTH_ATTRIBUTES: tuple[QueueAttributeNameType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class SqsBackend:
    """An SQS endpoint on 127.0.0.1: ``moto`` or ``localstack``."""

    name: str
    endpoint: str

    def client(self) -> SQSClient:
        """A boto3 SQS client on this endpoint (close it)."""
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=DRIVER_CONFIG,
        )


def sagemaker_client(endpoint: str) -> SageMakerClient:
    """A boto3 SageMaker client on the emulator (close it)."""
    return boto3.client(
        "sagemaker",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=DRIVER_CONFIG,
    )


def free_port() -> int:
    """A TCP port nobody listens on right now (never LocalStack's usual 4566)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != 4566:
            return port


def make_queue(
    client: SQSClient, prefix: str, *, max_receive_count: int | None = None, visibility_timeout: int = 30
) -> tuple[str, str | None]:
    """A fresh standard queue, with a dead-letter queue when ``max_receive_count`` is given: (queue, DLQ) URLs."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    attributes: dict[QueueAttributeNameType, str] = {"VisibilityTimeout": str(visibility_timeout)}
    dlq_url: str | None = None
    if max_receive_count is not None:
        dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
    queue_url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return queue_url, dlq_url


def queue_depth(client: SQSClient, queue_url: str) -> int:
    """Visible + in flight + delayed messages."""
    attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES))
    return sum(int(attributes["Attributes"].get(name, "0")) for name in DEPTH_ATTRIBUTES)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took. Fails the test naming ``what``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


# --- LocalStack -------------------------------------------------------------------------------------------


class LocalStackUnavailable(Exception):
    """LocalStack cannot be started here; the message says why (the tests skip with it)."""


@contextmanager
def localstack(run_dir: Path, *, install: bool) -> Iterator[str]:
    """Start LocalStack (SQS) on a free port with ``scripts/localstack-start``; stop exactly that process after.

    Raises :class:`LocalStackUnavailable` when there is no Python 3.13, it is not installed (and ``install`` is
    false) or it does not come up.
    """
    port = free_port()
    env = {**os.environ, "LOCALSTACK_RUN_DIR": str(run_dir), "LOCALSTACK_NO_INSTALL": "0" if install else "1"}
    result = subprocess.run(
        [str(LOCALSTACK_START), str(port)], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    pid_file = run_dir / "localstack.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        if result.returncode != 0:
            raise LocalStackUnavailable(result.stderr.strip() or f"localstack-start exited {result.returncode}")
        yield result.stdout.strip().splitlines()[-1]
    finally:
        if pid is not None:
            stop_pid(pid)


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM exactly ``pid`` (a process this test started), SIGKILL it if it lingers, wait until it is gone."""
    for signum, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    # Not our child (the start script backgrounds it), so it cannot be waited for; a zombie counts as gone.
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def json_body(document: Any) -> str:
    """Compact JSON, as SQS bodies are usually written."""
    return json.dumps(document, separators=(",", ":"))
