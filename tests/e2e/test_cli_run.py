"""``callback-worker run`` as a subprocess: start-up errors, plugin handlers, and the SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_factory import make_plugin

SLEEPY = """
import asyncio

class Sleepy:
    async def __call__(self, context):
        await asyncio.sleep(3600)
        return {}
"""
BROKEN = "raise RuntimeError('the plugin cannot start')\n"
TOKENS = ["Tok0000001", "Tok0000002", "Tok0000003"]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"


def worker_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLBACK_WORKER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    env["AWS_ENDPOINT_URL_SAGEMAKER"] = "http://127.0.0.1:9"
    env.update({f"CALLBACK_WORKER_{name.upper()}": value for name, value in settings.items()})
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_queue_url_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    result = run_cli(worker_env(tmp_path), "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "callback-worker: missing setting CALLBACK_WORKER_QUEUE_URL: URL of the SQS queue the callback steps send to."
    ]


def test_invalid_setting_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    result = run_cli(worker_env(tmp_path, queue_url="http://127.0.0.1:9/q", concurrency="0"), "run")
    assert result.returncode == 2
    assert "CALLBACK_WORKER_CONCURRENCY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_fifo_queue_url_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = run_cli(worker_env(tmp_path, queue_url="http://127.0.0.1:9/000000000000/callbacks.fifo"), "run")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("callback-worker: invalid setting CALLBACK_WORKER_QUEUE_URL=")
    assert "use a standard queue" in line


def test_unknown_default_handler_stops_start_up(tmp_path: Path) -> None:
    result = run_cli(worker_env(tmp_path, queue_url="http://127.0.0.1:9/q", handler="nope"), "run")
    assert result.returncode == 2
    assert "invalid setting CALLBACK_WORKER_HANDLER: no handler named 'nope'" in result.stderr
    assert "echo" in result.stderr


def test_a_plugin_that_fails_to_import_stops_start_up(tmp_path: Path) -> None:
    make_plugin(tmp_path, "broken-plugin", {"broken": "Handler"}, BROKEN, version="0.3")
    result = run_cli(worker_env(tmp_path, queue_url="http://127.0.0.1:9/q", handler="echo"), "run")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "'broken'" in line
    assert "broken-plugin 0.3" in line
    assert "the plugin cannot start" in line


def test_sigterm_drains_within_the_grace_period_and_releases_messages(
    tmp_path: Path, sqs_client: Any, queue_url: str
) -> None:
    make_plugin(tmp_path, "sleepy-plugin", {"sleepy": "Sleepy"}, SLEEPY)
    for token in TOKENS:
        body = {"token": token, "pipelineExecutionArn": ARN, "arguments": {}, "status": "Executing"}
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    env = worker_env(
        tmp_path,
        queue_url=queue_url,
        handler="sleepy",
        shutdown_grace="2",
        visibility_timeout="60",
        wait_time="2",
        verify_tokens="false",  # hand-made tokens: no SageMaker knows them
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "callback_worker.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_in_flight(sqs_client, queue_url, len(TOKENS))
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        elapsed = time.monotonic() - signalled
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert elapsed < 2 + 3, f"took {elapsed:.1f} s to stop"
    released = sqs_client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    assert sorted(json.loads(m["Body"])["token"] for m in released.get("Messages", [])) == TOKENS
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert "grace period over; cancelling unfinished handlers" in events
    assert "released unfinished messages" in events
    for token in TOKENS:
        assert token not in stderr


def wait_until_in_flight(sqs_client: Any, queue_url: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if int(attributes["ApproximateNumberOfMessagesNotVisible"]) == count:
            time.sleep(0.5)  # let the handlers start
            return
        time.sleep(0.2)
    pytest.fail(f"the worker did not take {count} messages within {timeout} s")
