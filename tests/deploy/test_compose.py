"""deploy/compose: LocalStack (pinned) with its init script, the emulator and the worker, wired to each other.

Docker is not needed: the file is read as data, the emulator's command line is parsed by the real CLI parser and
the init script is syntax-checked with ``bash -n``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
