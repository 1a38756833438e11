"""``callback-worker run`` warns, one log line each, about CALLBACK_WORKER_* variables that name no setting."""

from __future__ import annotations

import json
from pathlib import Path

from callback_worker.offline import CLOSED_ENDPOINT
from tests.e2e.test_cli_run import run_cli, worker_env


def test_start_up_warns_about_each_unknown_variable_with_the_closest_name(tmp_path: Path) -> None:
    env = worker_env(
        tmp_path,
        queue_url="http://127.0.0.1:9/callbacks",
        concurency="5",
        http_allowd_urls="https://example.com/",
        http_timeout="5",  # the http handler's own setting
        emulator_port="8080",  # the emulator's
        echo_anything="x",  # echo has no settings class: its namespace is its own
    )
    env["AWS_ENDPOINT_URL_SQS"] = CLOSED_ENDPOINT  # start-up then stops at the queue check, after the warnings
    result = run_cli(env, "run")
    assert result.returncode == 2
    logged, [stopped] = partition(result.stderr.splitlines())
    assert stopped.startswith("callback-worker: SQS: no answer at")
    lines = [json.loads(line) for line in logged]
    warnings = [(line["level"], line["variable"], line["closest"]) for line in lines if "variable" in line]
    assert warnings == [
        ("warning", "CALLBACK_WORKER_CONCURENCY", "CALLBACK_WORKER_CONCURRENCY"),
        ("warning", "CALLBACK_WORKER_HTTP_ALLOWD_URLS", "CALLBACK_WORKER_HTTP_ALLOWED_URLS"),
    ]
    assert lines[0]["event"] == (
        "CALLBACK_WORKER_CONCURENCY names no setting and is ignored; did you mean CALLBACK_WORKER_CONCURRENCY?"
    )


def partition(lines: list[str]) -> tuple[list[str], list[str]]:
    """The JSON log lines, and the others."""
    return [line for line in lines if line.startswith("{")], [line for line in lines if not line.startswith("{")]
