"""``callback-worker run`` warns, one log line each, about CALLBACK_WORKER_* variables that name no setting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callback_worker.offline import CLOSED_ENDPOINT
from tests.e2e.test_cli_run import worker_env


def test_start_up_warns_about_each_unknown_variable_with_the_closest_name(tmp_path: Path) -> None:
    env = worker_env(
        tmp_path,
        queue_url="http://127.0.0.1:9/callbacks",  # nobody listens: the worker keeps retrying until stopped
        concurency="5",
        http_allowd_urls="https://example.com/",
        http_timeout="5",  # the http handler's own setting
        emulator_port="8080",  # the emulator's
        echo_anything="x",  # echo has no settings class: its namespace is its own
    )
    env["AWS_ENDPOINT_URL_SQS"] = CLOSED_ENDPOINT
    process = subprocess.Popen(
        [sys.executable, "-m", "callback_worker.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(json.loads(line))
            if lines[-1]["event"] == "queue not reachable yet; retrying":
                break
        else:
            pytest.fail(f"the worker ended before it retried the queue: {lines}")
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0
    warnings = [(line["level"], line["variable"], line["closest"]) for line in lines if "variable" in line]
    assert warnings == [
        ("warning", "CALLBACK_WORKER_CONCURENCY", "CALLBACK_WORKER_CONCURRENCY"),
        ("warning", "CALLBACK_WORKER_HTTP_ALLOWD_URLS", "CALLBACK_WORKER_HTTP_ALLOWED_URLS"),
    ]
    assert lines[0]["event"] == (
        "CALLBACK_WORKER_CONCURENCY names no setting and is ignored; did you mean CALLBACK_WORKER_CONCURRENCY?"
    )
