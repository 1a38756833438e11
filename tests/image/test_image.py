"""The container image, built and run for real (podman, no Docker engine): the daemon's commands, the emulator
target, and ``run`` as UID 10001 on a read-only root filesystem answering real callbacks from the emulator's image
through moto's SQS server, with the image's HEALTHCHECK and a ``podman stop`` drain.

Both servers the worker talks to listen on 127.0.0.1 and the containers share the host's network.
"""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest

from tests.emulator_fixtures import create_pipeline, one_step_definition, start_execution, wait_for_status
from tests.image import podman
from tests.image.conftest import ENABLED, FIGURES, SKIP_REASON, Images

pytestmark = [pytest.mark.skipif(not ENABLED, reason=SKIP_REASON), pytest.mark.timeout(1800)]

USER = "10001"
#: The deployments' stop timeout: SHUTDOWN_GRACE (30) + WAIT_TIME (20) + 10 s (deploy/README.md).
STOP_TIMEOUT = 60
EXECUTIONS = 3
DAEMON_COMMANDS = ("run", "handlers", "describe", "steps", "pending", "succeed", "fail", "send-test-message")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def http_status(url: str) -> int:
    """The status of a GET, 0 when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0
    return status


def wait_until_listening(port: int, name: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            assert time.monotonic() < deadline, f"{name} is not listening on {port}:\n{podman.logs(name)}"
            assert podman.inspect(name)["State"]["Running"], f"{name} exited:\n{podman.logs(name)}"  # type: ignore[index]
            time.sleep(0.1)
        else:
            return


def aws_env(sqs_url: str) -> dict[str, str]:
    """Dummy credentials, the region and the SQS endpoint (moto) for a container; nothing reaches AWS."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION")
    env = {name: os.environ[name] for name in names if name in os.environ}
    env.update({"AWS_ENDPOINT_URL_SQS": sqs_url, "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def started_at(name: str) -> float:
    """The container's start as a Unix time (podman writes RFC 3339 with nanoseconds; datetime keeps microseconds)."""
    text = str(podman.inspect(name)["State"]["StartedAt"])  # type: ignore[index]
    match = re.fullmatch(r"([\d-]+T[\d:]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, f"StartedAt {text!r} is not RFC 3339"
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").timestamp()


# ---- one-shot commands --------------------------------------------------------------------------------------


def test_help_offers_the_daemons_commands(images: Images) -> None:
    result = podman.run_once(images.worker, "--help")
    assert result.returncode == 0, result.stderr
    for name in DAEMON_COMMANDS:
        assert re.search(rf"^    {name}\b", result.stdout, re.M), name


def test_handlers_lists_the_built_in_handlers(images: Images) -> None:
    result = podman.run_once(images.worker, "handlers")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()}
    assert {"echo", "command", "http", "glue", "batch", "stepfunctions", "lambda"} <= listed


@pytest.mark.parametrize(("command", "missing"), [("emulate", "emulator"), ("demo", "emulator, moto")])
def test_the_daemons_image_says_in_one_line_that_it_has_no_emulator(images: Images, command: str, missing: str) -> None:
    result = podman.run_once(images.worker, command)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"callback-worker {command}: not available here: {missing} not installed")


def test_only_the_emulator_target_holds_the_emulator_and_neither_holds_pip(images: Images) -> None:
    names = "('callback_worker.emulator', 'moto', 'pip')"
    probe = f"import importlib.util as u; print(*(u.find_spec(name) is not None for name in {names}))"
    found = {
        image: podman.run_once(image, "-c", probe, options=["--entrypoint", "python"]).stdout.split()
        for image in (images.worker, images.emulator)
    }
    assert found == {images.worker: ["False", "False", "False"], images.emulator: ["True", "False", "False"]}


def test_the_emulator_target_serves_emulate(images: Images) -> None:
    result = podman.run_once(images.emulator, "emulate", "--help")
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout


def test_missing_settings_stop_the_daemon_with_one_line(images: Images) -> None:
    result = podman.run_once(images.worker, options=["--read-only"])
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "CALLBACK_WORKER_QUEUE_URL" in line


# ---- the daemon against moto SQS and the emulator's image ---------------------------------------------------


@pytest.fixture
def emulator_container(images: Images, moto_server: str) -> Iterator[str]:
    """The emulator's image on the host network, sending callback messages to moto; its endpoint URL."""
    name = f"image-test-emulator-{uuid.uuid4().hex[:8]}"
    port = free_port()
    try:
        podman.start(
            name, images.emulator, "emulate", "--host", "127.0.0.1", "--port", str(port), env=aws_env(moto_server)
        )
        wait_until_listening(port, name)
        yield f"http://127.0.0.1:{port}"
    finally:
        podman.remove(name)


@pytest.fixture
def worker_name() -> Iterator[str]:
    name = f"image-test-worker-{uuid.uuid4().hex[:8]}"
    yield name
    podman.remove(name)


def start_worker(
    images: Images, name: str, sqs_url: str, sagemaker_url: str, queue_url: str, **settings: str
) -> tuple[int, float]:
    """Start the daemon's image with its own ENTRYPOINT and CMD (`run`); its health port and the start time.
    ``settings`` are more ``CALLBACK_WORKER_*`` variables, by their lower-case names."""
    port = free_port()
    env = {
        **aws_env(sqs_url),
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "CALLBACK_WORKER_QUEUE_URL": queue_url,
        "CALLBACK_WORKER_HANDLER": "echo",
        "CALLBACK_WORKER_HEALTH_PORT": str(port),
        # The host's network: the health port stays on loopback.
        "CALLBACK_WORKER_HEALTH_HOST": "127.0.0.1",
        **{f"CALLBACK_WORKER_{key.upper()}": value for key, value in settings.items()},
    }
    began = time.time()
    podman.start(name, images.worker, env=env, options=["--user", f"{USER}:{USER}"])
    return port, began


def wait_ready(name: str, port: int, within: float = 60) -> float:
    """Poll /readyz every 20 ms until 200; the Unix time of the first 200."""
    deadline = time.monotonic() + within
    while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
        assert time.monotonic() < deadline, f"/readyz not 200 within {within} s:\n{podman.logs(name)}"
        assert podman.inspect(name)["State"]["Running"], f"the worker exited:\n{podman.logs(name)}"  # type: ignore[index]
        time.sleep(0.02)
    return time.time()


def in_container(name: str, code: str) -> tuple[int, str]:
    result = podman.podman("exec", name, "python", "-c", code, check=False)
    return result.returncode, result.stdout.strip() + result.stderr.strip()


def test_run_answers_callbacks_read_only_as_uid_10001_and_drains_on_stop(
    images: Images, moto_server: str, queue_url: str, emulator_container: str, worker_name: str
) -> None:
    port, began = start_worker(images, worker_name, moto_server, emulator_container, queue_url)
    ready = wait_ready(worker_name, port)
    FIGURES["start_to_readyz_s"] = {
        "podman_run": round(ready - began, 2),
        "process": round(ready - started_at(worker_name), 2),
    }

    sagemaker: Any = boto3.client("sagemaker", endpoint_url=emulator_container)
    pipeline = create_pipeline(sagemaker, one_step_definition(queue_url, arguments={"greeting": "hello"}))
    arns = [start_execution(sagemaker, pipeline) for _ in range(EXECUTIONS)]
    for arn in arns:
        wait_for_status(sagemaker, arn, "Succeeded", timeout=60)
    sagemaker.close()

    state: Any = podman.inspect(worker_name)
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert in_container(worker_name, "import os; print(os.getuid(), os.getgid())") == (0, f"{USER} {USER}")
    code, output = in_container(worker_name, "open('/written', 'w')")
    assert code == 1
    assert "Read-only file system" in output
    assert in_container(worker_name, "print(open('/proc/1/cmdline').read().split(chr(0))[0])") == (0, "dumb-init")
    health = podman.podman("healthcheck", "run", worker_name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr

    stopping = time.monotonic()
    podman.podman("stop", "--time", str(STOP_TIMEOUT), worker_name, timeout=STOP_TIMEOUT + 30)
    FIGURES["podman_stop_drain_s"] = round(time.monotonic() - stopping, 2)
    stopped: Any = podman.inspect(worker_name)["State"]
    assert stopped["ExitCode"] == 0, f"SIGTERM through dumb-init must drain and exit 0:\n{podman.logs(worker_name)}"
    assert stopped["OOMKilled"] is False


def in_flight(port: int) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    (line,) = [line for line in text.splitlines() if line.startswith("callback_worker_in_flight_messages ")]
    return float(line.split()[1])


def test_stop_with_a_handler_at_work_releases_its_message_and_exits_0(
    images: Images, moto_server: str, queue_url: str, emulator_container: str, worker_name: str
) -> None:
    """SIGTERM through dumb-init while a `command` handler runs: the grace period passes, the handler's program is
    stopped, its message is visible again at once (not after the 60 s visibility timeout), the exit code is 0."""
    port, _ = start_worker(
        images,
        worker_name,
        moto_server,
        emulator_container,
        queue_url,
        handler="command",
        command_argv='["sleep", "300"]',
        command_kill_grace="1",
        shutdown_grace="3",
        visibility_timeout="60",
    )
    wait_ready(worker_name, port)
    sagemaker: Any = boto3.client("sagemaker", endpoint_url=emulator_container)
    arn = start_execution(sagemaker, create_pipeline(sagemaker, one_step_definition(queue_url)))
    deadline = time.monotonic() + 60
    while in_flight(port) < 1:
        assert time.monotonic() < deadline, f"the handler never started:\n{podman.logs(worker_name)}"
        time.sleep(0.1)

    stopping = time.monotonic()
    podman.podman("stop", "--time", str(STOP_TIMEOUT), worker_name, timeout=STOP_TIMEOUT + 30)
    FIGURES["podman_stop_drain_in_flight_s"] = round(time.monotonic() - stopping, 2)
    assert podman.inspect(worker_name)["State"]["ExitCode"] == 0, podman.logs(worker_name)  # type: ignore[index]

    sqs: Any = boto3.client("sqs", endpoint_url=moto_server)
    released = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10)
    sqs.close()
    assert len(released.get("Messages", [])) == 1, "the message is visible again at once"
    assert sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    sagemaker.close()
