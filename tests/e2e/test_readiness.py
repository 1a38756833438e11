"""``callback-worker run`` is ready as soon as its handlers are loaded and the queue check passed, before the first
long poll returns: a rolling update or a scale-up does not wait ``WAIT_TIME`` seconds per pod."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_cli_run import worker_env

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> tuple[int, str]:
    try:
        with OPENER.open(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def last_poll(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        if family.name == "callback_worker_last_successful_poll_timestamp_seconds":
            return float(family.samples[0].value)
    raise AssertionError("no last-poll gauge in /metrics")


def test_ready_before_the_first_long_poll_returns(tmp_path: Path, queue_url: str, sqs_client: Any) -> None:
    port = free_port()
    env = worker_env(
        tmp_path, queue_url=queue_url, handler="echo", wait_time="20", health_port=str(port), verify_tokens="false"
    )  # no SageMaker here: verification off, so start-up does not need it
    process = subprocess.Popen(
        [sys.executable, "-m", "callback_worker.cli", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        status, metrics = 0, ""
        deadline = time.monotonic() + 15  # well inside the first 20-second long poll on an empty queue
        while time.monotonic() < deadline and status != 200:
            status, _ = fetch(f"http://127.0.0.1:{port}/readyz")
            time.sleep(0.05)
        _, metrics = fetch(f"http://127.0.0.1:{port}/metrics")
        details = json.loads(fetch(f"http://127.0.0.1:{port}/readyz")[1] or "{}")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=40)
    assert status == 200, stderr
    assert details["sqs_reachable"] is True
    assert last_poll(metrics) == 0.0  # no receive had returned: the queue check alone made the worker ready
    assert process.returncode == 0, stderr
