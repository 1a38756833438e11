"""``callback-worker run`` stops at start-up, exit 2 with one line naming the fix, on what cannot work: a JSON setting
that is not JSON, no credentials, an SQS endpoint where nobody answers, a queue URL of another region, a queue the
region does not have, SageMaker unreachable or denied while tokens are verified. Real servers on 127.0.0.1 (moto, the
emulator), a closed port for "nobody answers", a fault proxy in front of the emulator for "denied". Every endpoint
here is overridden (``AWS_ENDPOINT_URL_*``: a local setup), so a refused connection or a denial stops start-up at
once; on AWS's own endpoints they are tried again within the start-up window first
(tests/integration/test_start_up_window.py). With verification off, SageMaker down at start-up is only a warning: the
daemon starts and waits SageMaker out."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.offline import CLOSED_ENDPOINT
from tests.e2e.test_cli_run import run_cli, worker_env
from tests.faultproxy import FaultProxy, Rule
from tests.http_stub import answering

DENY_ALL = 1_000_000


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line ``run`` stopped with (exit 2); the log lines before it are JSON objects."""
    assert result.returncode == 2, result.stderr
    [line] = [line for line in result.stderr.strip().splitlines() if not line.startswith("{")]
    return line


def test_a_routes_setting_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    env = worker_env(tmp_path, queue_url="http://127.0.0.1:9/q", routes='{"pipeline": ')
    line = only_line(run_cli(env, "run"))
    assert line.startswith("callback-worker: invalid setting CALLBACK_WORKER_ROUTES='{\"pipeline\": ': ")
    assert "not valid JSON" in line


def test_no_credentials_is_said_so(tmp_path: Path, queue_url: str) -> None:
    env = worker_env(tmp_path, queue_url=queue_url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    line = only_line(run_cli(env, "run"))
    assert line.startswith("callback-worker: credentials: none found (environment, AWS_PROFILE, ")
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line


def test_an_sqs_endpoint_nobody_answers_at_stops_at_once(tmp_path: Path, queue_url: str) -> None:
    env = worker_env(tmp_path, queue_url=queue_url)
    env["AWS_ENDPOINT_URL_SQS"] = CLOSED_ENDPOINT
    line = only_line(run_cli(env, "run"))
    assert line.startswith(f"callback-worker: SQS: no answer at {CLOSED_ENDPOINT} (AWS_ENDPOINT_URL_SQS): ")
    assert line.endswith("; check AWS_ENDPOINT_URL_SQS")


def test_a_queue_url_of_another_region_names_the_region(tmp_path: Path, moto_server: str) -> None:
    env = worker_env(tmp_path, queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/callbacks")
    env["AWS_ENDPOINT_URL_SQS"] = moto_server
    assert only_line(run_cli(env, "run")) == (
        "callback-worker: region: CALLBACK_WORKER_QUEUE_URL is a queue in eu-west-1, but the AWS clients use "
        "us-east-1 (from AWS_REGION); set AWS_REGION=eu-west-1"
    )


def test_a_queue_the_region_does_not_have_names_the_region(tmp_path: Path, queue_url: str, moto_server: str) -> None:
    env = worker_env(tmp_path, queue_url=queue_url)
    env.update(AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1")
    assert only_line(run_cli(env, "run")) == (
        f"callback-worker: queue: {queue_url} does not exist in eu-west-1 at {moto_server}; check "
        "CALLBACK_WORKER_QUEUE_URL, and AWS_REGION (a queue lives in one region)"
    )


def test_sagemaker_unreachable_while_tokens_are_verified_stops_start_up(tmp_path: Path, queue_url: str) -> None:
    env = worker_env(tmp_path, queue_url=queue_url)  # SageMaker's endpoint: a closed port
    line = only_line(run_cli(env, "run"))
    assert line.startswith(
        f"callback-worker: SageMaker: no answer at {CLOSED_ENDPOINT} (AWS_ENDPOINT_URL_SAGEMAKER), which "
        "CALLBACK_WORKER_VERIFY_TOKENS=true needs: "
    )
    assert line.endswith("; check AWS_ENDPOINT_URL_SAGEMAKER")


async def test_sagemaker_denying_the_look_ups_while_tokens_are_verified_stops_start_up(
    tmp_path: Path, queue_url: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    async with FaultProxy(threaded_emulator.endpoint_url) as proxy:
        proxy.add(Rule("ListPipelineExecutionSteps", "error", times=DENY_ALL, code="AccessDeniedException"))
        env = worker_env(tmp_path, queue_url=queue_url)
        env["AWS_ENDPOINT_URL_SAGEMAKER"] = proxy.url
        code, _, stderr = await run_async(env)
    assert code == 2, stderr
    assert [line for line in stderr.strip().splitlines() if not line.startswith("{")] == [
        "callback-worker: SageMaker: denied ListPipelineExecutionSteps (AccessDeniedException), which "
        "CALLBACK_WORKER_VERIFY_TOKENS=true needs; grant sagemaker:ListPipelineExecutionSteps on "
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/*/execution/* (a role limited to named pipelines must "
        "also allow pipeline/callback-worker-preflight, the made-up one the check asks about)"
    ]


def test_sagemaker_unreachable_without_verification_is_a_warning_and_the_worker_runs(
    tmp_path: Path, queue_url: str
) -> None:
    env = worker_env(tmp_path, queue_url=queue_url, verify_tokens="false", wait_time="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "callback_worker.cli", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[dict[str, Any]] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(json.loads(line))
            if lines[-1]["event"] == "worker started":
                break
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    [warning] = [line for line in lines if line["event"].startswith("SageMaker: ")]
    assert warning["level"] == "warning"
    assert warning["event"].startswith(f"SageMaker: no answer at {CLOSED_ENDPOINT} (AWS_ENDPOINT_URL_SAGEMAKER)")


async def run_async(env: dict[str, str]) -> tuple[int, str, str]:
    """``run`` in a subprocess while this test's loop serves the fault proxy."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callback_worker.cli",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return int(process.returncode or 0), stdout.decode(), stderr.decode()


PROFILE_NOT_FOUND = (
    "credentials: profile 'nosuch' not found; set AWS_PROFILE to a profile of ~/.aws/config (or ~/.aws/credentials), "
    "or unset it"
)


def profile_env(tmp_path: Path) -> dict[str, str]:
    env = worker_env(tmp_path, queue_url="http://127.0.0.1:9/q")
    env.update(AWS_PROFILE="nosuch", AWS_CONFIG_FILE=str(tmp_path / "config"))
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    return env


@pytest.mark.parametrize(
    "command", [["run"], ["pending"], ["send-test-message", "--queue-url", "http://127.0.0.1:9/q"]]
)
def test_a_profile_no_file_has_is_one_line_naming_the_fix(tmp_path: Path, command: list[str]) -> None:
    assert only_line(run_cli(profile_env(tmp_path), *command)) == f"callback-worker: {PROFILE_NOT_FOUND}"


def test_doctor_names_a_profile_no_file_has_and_still_checks_the_rest(tmp_path: Path) -> None:
    """No client can be made, so no AWS check runs; the handlers and the settings are still checked and listed."""
    env = profile_env(tmp_path) | {"CALLBACK_WORKER_HANDLER": "nosuch-handler"}
    result = run_cli(env, "doctor")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"FAIL  {PROFILE_NOT_FOUND}" in lines
    assert any(line.startswith("ok    handler echo: ") for line in lines), lines
    assert any(line.startswith("warn  signing key: none set: each process seals") for line in lines), lines
    assert any(
        line.startswith("FAIL  settings: CALLBACK_WORKER_HANDLER names handler 'nosuch-handler'") for line in lines
    )
    assert lines[-1] == "2 problem(s) `run` would stop on; 1 warning(s)"


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"CALLBACK_WORKER_SIGNING_KEY": "short"},
            "FAIL  signing key: invalid setting CALLBACK_WORKER_SIGNING_KEY: the key on line 1 is 5 bytes; at least 32 "
            "are needed (make one with: openssl rand -base64 32)",
        ),
        ({"CALLBACK_WORKER_SIGNING_KEY": "k" * 32 + "\n" + "j" * 32}, "ok    signing key: 2 key(s) read; key "),
    ],
    ids=["short key", "two keys"],
)
def test_doctor_reads_the_signing_keys_as_run_does(tmp_path: Path, settings: dict[str, str], line: str) -> None:
    result = run_cli(profile_env(tmp_path) | settings, "doctor")
    assert any(found.startswith(line) for found in result.stdout.splitlines()), result.stdout


async def test_a_sagemaker_endpoint_that_is_not_sagemaker_stops_start_up(tmp_path: Path, queue_url: str) -> None:
    """A web server's 404 page is not an outage: the endpoint variable points somewhere else than SageMaker."""
    async with answering(404, "<html>no such page</html>", "text/html") as url:
        env = worker_env(tmp_path, queue_url=queue_url)
        env["AWS_ENDPOINT_URL_SAGEMAKER"] = url
        code, _, stderr = await run_async(env)
    assert code == 2, stderr
    assert [line for line in stderr.strip().splitlines() if not line.startswith("{")] == [
        f"callback-worker: SageMaker: {url} (AWS_ENDPOINT_URL_SAGEMAKER) is not a SageMaker endpoint "
        "(HTTP 404, no AWS error in the answer), which CALLBACK_WORKER_VERIFY_TOKENS=true needs; "
        "check AWS_ENDPOINT_URL_SAGEMAKER"
    ]


def test_a_profile_from_aws_default_profile_is_named_by_that_variable(tmp_path: Path) -> None:
    env = worker_env(tmp_path, queue_url="http://127.0.0.1:9/q")
    env.update(AWS_DEFAULT_PROFILE="nosuch", AWS_CONFIG_FILE=str(tmp_path / "config"))
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    env.pop("AWS_PROFILE", None)
    assert only_line(run_cli(env, "run")) == (
        "callback-worker: credentials: profile 'nosuch' not found; set AWS_DEFAULT_PROFILE to a profile of "
        "~/.aws/config (or ~/.aws/credentials), or unset it"
    )
