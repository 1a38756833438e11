"""``callback-worker doctor`` against moto (SQS, STS) and the emulator on 127.0.0.1: one line per finding, a broken
plugin listed with its error beside the others, and SageMaker's denials (through a fault proxy) told apart from
"not found"."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.worker.preflight import NO_CREDENTIALS
from tests.e2e.test_cli_run import BROKEN, worker_env
from tests.faultproxy import FaultProxy, Rule
from tests.http_stub import answering
from tests.plugin_factory import make_plugin

GREETER = "async def greet(context):\n    return {}\n"
#: What a denial adds for roles limited to named pipelines.
NAMED = (
    " (a role limited to named pipelines must also allow pipeline/callback-worker-preflight, the made-up one the "
    "check asks about)"
)


def redriven_queue(sqs_client: Any, name: str) -> str:
    dlq = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    attributes = {"RedrivePolicy": redrive, "VisibilityTimeout": "60"}
    return str(sqs_client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


async def doctor(env: dict[str, str]) -> tuple[int, list[str]]:
    """``doctor`` in a subprocess while this test's loop serves the fault proxy: its exit code and its lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callback_worker.cli", "doctor", env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return int(process.returncode or 0), stdout.decode().splitlines()


def env_for(tmp_path: Path, queue_url: str, moto_server: str, sagemaker: str, **settings: str) -> dict[str, str]:
    env = worker_env(tmp_path, queue_url=queue_url, **settings)
    env.update(AWS_ENDPOINT_URL_SQS=moto_server, AWS_ENDPOINT_URL_STS=moto_server, AWS_ENDPOINT_URL_SAGEMAKER=sagemaker)
    return env


async def test_every_check_is_one_line_and_a_broken_plugin_hides_no_other(
    tmp_path: Path, sqs_client: Any, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    make_plugin(tmp_path, "acme-broken", {"broken": "Handler"}, BROKEN, version="0.3")
    make_plugin(tmp_path, "acme-greeter", {"greet": "greet"}, GREETER)
    queue_url = redriven_queue(sqs_client, "doctor-healthy")
    keys = tmp_path / "signing-keys"
    keys.write_text("# the replicas' shared keys\n" + "k" * 32 + "\n")
    env = env_for(
        tmp_path, queue_url, moto_server, threaded_emulator.endpoint_url, concurency="3", signing_key_file=str(keys)
    )
    code, lines = await doctor(env)
    assert code == 1  # the broken plugin would stop `run`
    assert lines[-1] == "1 problem(s) `run` would stop on; 1 warning(s)"
    findings = lines[:-2]
    for line in [
        "ok    region: us-east-1 (from AWS_REGION)",
        f"ok    SQS: endpoint {moto_server} (AWS_ENDPOINT_URL_SQS)",
        "ok    credentials: found (env)",
        "ok    identity: arn:aws:sts::123456789012:user/moto (account 123456789012)",
        f"ok    queue: {queue_url} exists and answers",
        "ok    queue: VisibilityTimeout 60 s, as CALLBACK_WORKER_VISIBILITY_TIMEOUT=60",
        "ok    SageMaker: ListPipelineExecutionSteps allowed (CALLBACK_WORKER_VERIFY_TOKENS=true)",
        "ok    SageMaker: SendPipelineExecutionStepSuccess allowed (answering steps)",
        "ok    SageMaker: SendPipelineExecutionStepFailure allowed (answering steps)",
        "ok    handler greet: acme_greeter:greet (acme-greeter 1.0)",
        "warn  settings: CALLBACK_WORKER_CONCURENCY names no setting and is ignored; did you mean "
        "CALLBACK_WORKER_CONCURRENCY?",
    ]:
        assert line in findings, "\n".join(findings)
    [broken] = [line for line in findings if line.startswith("FAIL")]
    assert broken.startswith("FAIL  handler broken: handler 'broken' from acme_broken:Handler (acme-broken 0.3)")
    assert broken.endswith("failed to load: RuntimeError: the plugin cannot start")
    assert any(line.startswith("ok    handler echo: ") for line in findings)
    assert any(line.startswith("ok    queue: redrive policy: after 5 receives to ") for line in findings)
    assert any(line.startswith("ok    signing key: 1 key(s) read; key ") for line in findings)


async def test_a_plugin_outside_the_allowlist_is_neither_loaded_nor_listed(
    tmp_path: Path, sqs_client: Any, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    """As ``run``: a handler the allowlist leaves out is never imported, so a broken one outside it is no problem."""
    make_plugin(tmp_path, "acme-broken", {"broken": "Handler"}, BROKEN, version="0.3")
    queue_url = redriven_queue(sqs_client, "doctor-allowlist")
    env = env_for(tmp_path, queue_url, moto_server, threaded_emulator.endpoint_url, handlers="echo")
    code, lines = await doctor(env)
    assert code == 0, "\n".join(lines)
    assert not [line for line in lines if "handler broken" in line]
    assert any(line.startswith("ok    handler echo: ") for line in lines)


async def test_denials_are_told_from_not_found(
    tmp_path: Path, sqs_client: Any, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    queue_url = redriven_queue(sqs_client, "doctor-denied")
    async with FaultProxy(threaded_emulator.endpoint_url) as proxy:
        for operation in ("ListPipelineExecutionSteps", "SendPipelineExecutionStepSuccess"):
            proxy.add(Rule(operation, "error", times=10, code="AccessDeniedException"))
        code, lines = await doctor(env_for(tmp_path, queue_url, moto_server, proxy.url))
    assert code == 1
    resource = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/*/execution/*"
    assert (
        "FAIL  SageMaker: denied ListPipelineExecutionSteps (AccessDeniedException), which "
        f"CALLBACK_WORKER_VERIFY_TOKENS=true needs; grant sagemaker:ListPipelineExecutionSteps on {resource}{NAMED}"
    ) in lines
    assert (
        "warn  SageMaker: denied SendPipelineExecutionStepSuccess (AccessDeniedException), which answering steps "
        f"needs; grant sagemaker:SendPipelineExecutionStepSuccess on {resource}{NAMED}"
    ) in lines
    assert "ok    SageMaker: SendPipelineExecutionStepFailure allowed (answering steps)" in lines


async def test_without_credentials_doctor_says_so_once_and_makes_no_call_that_needs_them(
    tmp_path: Path, sqs_client: Any, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    queue_url = redriven_queue(sqs_client, "doctor-anonymous")
    env = env_for(tmp_path, queue_url, moto_server, threaded_emulator.endpoint_url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    code, lines = await doctor(env)
    assert code == 1
    assert [line for line in lines if "credentials:" in line] == [NO_CREDENTIALS.line()]
    made_calls = ("ok    queue", "ok    SageMaker: List", "warn  queue", "warn  SageMaker")
    assert not any(line.startswith(made_calls) for line in lines), lines
    assert lines[-1] == "1 problem(s) `run` would stop on; 1 warning(s)"  # the signing key, none set


STS_REFUSAL = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message>"
    "</Error><RequestId>0</RequestId></ErrorResponse>"
)


async def test_an_sts_refusal_is_a_note_when_sqs_and_sagemaker_take_the_credentials(
    tmp_path: Path, sqs_client: Any, moto_server: str, threaded_emulator: ThreadedEmulatorServer
) -> None:
    """A local setup whose STS knows nothing of its credentials (real AWS STS with dummy ones, say): the worker never
    calls STS, so `run` would start, and doctor says so."""
    async with answering(403, STS_REFUSAL, "text/xml") as url:
        env = env_for(tmp_path, redriven_queue(sqs_client, "doctor-sts"), moto_server, threaded_emulator.endpoint_url)
        env["AWS_ENDPOINT_URL_STS"] = url
        code, lines = await doctor(env)
    assert code == 0, "\n".join(lines)
    [identity] = [line for line in lines if line.startswith("note  identity: ")]
    assert identity.startswith("note  identity: STS refused (InvalidClientTokenId: The security token included")
    assert "but SQS and SageMaker accepted the credentials (the worker never calls STS)" in identity
