"""deploy/compose: LocalStack (pinned) with its init script, the emulator and the worker, wired to each other.

Docker is not needed: the file is read as data, the emulator's command line is parsed by the real CLI parser and
the init script is syntax-checked with ``bash -n``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callback_worker.cli import build_parser
from tests.deploy.manifests import (
    COMPOSE,
    DOCKERFILE,
    JsonObject,
    compose_env,
    compose_services,
    dockerfile_stages,
    load_image,
)

READY_D = "/etc/localstack/init/ready.d"


def service(name: str) -> JsonObject:
    return compose_services()[name]


def test_three_services() -> None:
    assert set(compose_services()) == {"localstack", "emulator", "worker"}


def test_localstack_is_pinned_and_runs_only_sqs() -> None:
    localstack = service("localstack")
    image, _, tag = localstack["image"].partition(":")
    assert image == "localstack/localstack"
    assert re.fullmatch(r"\d+(\.\d+){1,2}", tag), f"pin a LocalStack release, not {tag or 'latest'!r}"
    env = compose_env("localstack")
    assert env["SERVICES"] == "sqs"
    assert env["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}", "passed through from the user's shell"


def init_scripts() -> list[Path]:
    mounts = [volume.split(":") for volume in service("localstack")["volumes"]]
    (source,) = [Path(source) for source, target, *_ in mounts if target == READY_D]
    directory = (COMPOSE.parent / source).resolve()
    scripts = sorted(directory.glob("*.sh"))
    assert scripts, f"no init script in {directory}"
    return scripts


def test_init_script_creates_the_queue_and_its_dead_letter_queue() -> None:
    for script in init_scripts():
        assert os.access(script, os.X_OK), f"LocalStack runs only executable init scripts: chmod +x {script.name}"
        text = script.read_text()
        assert text.startswith("#!/bin/bash\n")
        assert "set -euo pipefail" in text
        assert "create-queue" in text
        assert "RedrivePolicy" in text
        assert "deadLetterTargetArn" in text
        assert "maxReceiveCount" in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_init_script_is_valid_bash() -> None:
    for script in init_scripts():
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def test_emulator_command_parses_and_listens_on_all_interfaces() -> None:
    command = service("emulator")["command"]
    args = build_parser().parse_args(command)
    assert command[0] == "emulate"
    assert args.host == "0.0.0.0"  # noqa: S104 - the other containers reach it by its service name
    assert f"http://emulator:{args.port}" == compose_env()["AWS_ENDPOINT_URL_SAGEMAKER"]
    assert f"{args.port}:{args.port}" in service("emulator")["ports"][0]


def test_both_programs_use_localstack_sqs_and_dummy_credentials() -> None:
    for name in ("emulator", "worker"):
        env = compose_env(name)
        assert env["AWS_ENDPOINT_URL_SQS"] == "http://localstack:4566", name
        assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "test", name
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1", name


def test_images_are_built_from_the_repository_dockerfile() -> None:
    for name in ("emulator", "worker"):
        build = service(name)["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["target"] == name, "the worker's image holds no emulator: each service builds its own target"
        assert build["target"] in {stage.name for stage in dockerfile_stages()}
        assert "entrypoint" not in service(name), "keep the image's init (dumb-init) entrypoint"


def test_read_only_health_checked_and_started_in_order() -> None:
    for name in ("emulator", "worker"):
        assert service(name)["read_only"] is True, name
    for name, definition in compose_services().items():
        assert definition["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert service("emulator")["depends_on"] == {"localstack": {"condition": "service_healthy"}}
    assert service("worker")["depends_on"] == {
        "localstack": {"condition": "service_healthy"},
        "emulator": {"condition": "service_healthy"},
    }


def test_worker_healthcheck_is_the_images_healthcheck() -> None:
    _, command = load_image().healthcheck()
    assert service("worker")["healthcheck"]["test"] == ["CMD", *command]
    port = compose_env()["CALLBACK_WORKER_HEALTH_PORT"]
    assert any(mapping.endswith(f":{port}") for mapping in service("worker")["ports"])


def test_worker_queue_url_is_the_one_localstack_creates() -> None:
    url = compose_env()["CALLBACK_WORKER_QUEUE_URL"]
    name = compose_env("localstack")["CALLBACK_QUEUE_NAME"]
    assert url == f"http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/{name}"


FAKE_AWSLOCAL = """#!{python}
import json, os, sys
args = sys.argv[1:]
files = [open(arg.removeprefix("file://")).read() for arg in args if arg.startswith("file://")]
with open(os.environ["AWSLOCAL_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "files": files}}) + "\\n")
if args[1] == "get-queue-url":
    print("http://localhost.localstack.cloud:4566/000000000000/" + args[args.index("--queue-name") + 1])
elif args[1] == "get-queue-attributes":
    print("arn:aws:sqs:us-east-1:000000000000:" + args[args.index("--queue-url") + 1].rsplit("/", 1)[1])
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_init_script_lets_only_the_callback_queue_name_its_dead_letter_queue(tmp_path: Path) -> None:
    """Run against a stand-in ``awslocal`` that records each call: without a redrive allow policy on the DLQ, any
    queue of the account could name it as its dead-letter queue and have SQS move bodies of its choosing in."""
    fake = tmp_path / "awslocal"
    fake.write_text(FAKE_AWSLOCAL.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "AWSLOCAL_LOG": str(log)}
    for script in init_scripts():
        log.unlink(missing_ok=True)
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=60)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        attributes: dict[str, dict[str, str]] = {}
        for call in calls:
            args, files = call["args"], call["files"]
            if args[1] in {"create-queue", "set-queue-attributes"} and files:
                name = args[args.index("--queue-name") + 1] if "--queue-name" in args else args[3].rsplit("/", 1)[1]
                attributes.setdefault(name, {}).update(json.loads(files[0]))
        arn = "arn:aws:sqs:us-east-1:000000000000:"
        allowed = json.loads(attributes["callbacks-dlq"]["RedriveAllowPolicy"])
        assert allowed == {"redrivePermission": "byQueue", "sourceQueueArns": [f"{arn}callbacks"]}
        redrive = json.loads(attributes["callbacks"]["RedrivePolicy"])
        assert redrive == {"deadLetterTargetArn": f"{arn}callbacks-dlq", "maxReceiveCount": "5"}
        created = [call["args"][3] for call in calls if call["args"][1] == "create-queue"]
        assert created == ["callbacks", "callbacks-dlq"], "the allow policy names a queue that exists"
