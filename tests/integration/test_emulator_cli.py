"""``python -m callback_worker.emulator`` (the same options as ``callback-worker emulate``) as a real process."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

URL_LINE = re.compile(rb"SageMaker emulator listening on (http://127\.0\.0\.1:\d+)")


def spawn(arguments: list[str], environment: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(environment or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "callback_worker.emulator", *arguments], stderr=subprocess.PIPE, env=env
    )


def read_until(process: subprocess.Popen[bytes], pattern: re.Pattern[bytes], timeout: float = 60.0) -> re.Match[bytes]:
    """Read the process's stderr line by line until ``pattern`` matches."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = process.stderr.readline()
        if not line:
            break
        seen += line
        if match := pattern.search(line):
            return match
    raise AssertionError(f"{pattern.pattern!r} not seen; stderr so far: {seen.decode(errors='replace')}")


@pytest.fixture
def emulator_process(moto_server: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The emulator as a process, with every ListPipelines call throttled; yields it and its URL."""
    process = spawn(["--port", "0", "--region", "eu-west-1", "--fault", "ListPipelines:throttle=1", "--seed", "3"])
    try:
        url = read_until(process, URL_LINE)[1].decode()
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def test_the_process_serves_until_sigterm_and_exits_zero(emulator_process: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = emulator_process
    client = boto3.client("sagemaker", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}))
    try:
        with pytest.raises(ClientError) as raised:
            client.list_pipelines()
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        with pytest.raises(client.exceptions.ResourceNotFound) as missing:
            client.describe_pipeline(PipelineName="absent")
        assert "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/absent" in missing.value.response["Error"]["Message"]
    finally:
        client.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    read_until(process, re.compile(rb"SageMaker emulator stopped"))


def test_environment_variables_configure_faults(moto_server: str) -> None:
    process = spawn(["--port", "0"], {"CALLBACK_WORKER_EMULATOR_THROTTLE_RATE": "1"})
    try:
        url = read_until(process, URL_LINE)[1].decode()
        client = boto3.client("sagemaker", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}))
        try:
            with pytest.raises(ClientError) as raised:
                client.describe_pipeline(PipelineName="any")
            assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        finally:
            client.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def test_invalid_fault_options_exit_with_status_2() -> None:
    process = spawn(["--fault", "NoSuchOperation:throttle=1"])
    try:
        read_until(process, re.compile(rb"invalid emulator options: .*no such operation"))
        assert process.wait(10) == 2
    finally:
        assert process.stderr is not None
        process.stderr.close()
