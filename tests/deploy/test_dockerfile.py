"""The Dockerfile: hadolint, the image contract, and its command lines run outside a container.

No Docker engine is needed: the ENTRYPOINT + CMD and the HEALTHCHECK are parsed from the Dockerfile and run from
the test virtual environment, which stands in for the image's ``/opt/venv``. Only ``dumb-init ... --`` is left out
(the init process is not part of the program's command line); its lock entry is checked instead. The image itself is
built and run by ``make image-test`` (tests/image).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    BIN,
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    dockerfile_stages,
    image_environment,
    load_image,
    parse_dockerfile,
    run_tool,
)

PINNED_SLIM_PYTHON = re.compile(r"python:3\.1[12]\.\d+-slim(-[a-z]+)?")
LOCK = REPO / "requirements.lock"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the value the image sets, compared here
INIT = ["dumb-init", "--single-child", "--"]
#: The pip that installs into the image's environment from outside it: /opt/venv holds no pip.
PIP = "/opt/pip/bin/pip --python /opt/venv/bin/python"


def test_hadolint_finds_nothing() -> None:
    result = run_tool("hadolint", "--no-color", "--failure-threshold", "style", "--format", "json", str(DOCKERFILE))
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0, f"hadolint: {result.stderr}"
    assert findings == [], "\n".join(f"line {item['line']}: {item['code']} {item['message']}" for item in findings)


def test_every_stage_stands_on_the_pinned_slim_python_given_as_build_argument() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=\S+$", text, re.M), "the base is the build argument PYTHON_IMAGE"
    stages = dockerfile_stages()
    names = [stage.name for stage in stages]
    for index, stage in enumerate(stages):
        if stage.name == "wheelhouse":
            assert stage.base == "scratch", "the wheelhouse stage is empty unless a build context replaces it"
            assert stage.instructions == []
        elif stage.base not in names[:index]:
            assert PINNED_SLIM_PYTHON.fullmatch(stage.base), f"{stage.base}: pin a slim Python 3.11/3.12 base"
    bases = {stage.base for stage in stages} - set(names) - {"scratch"}
    assert len(bases) == 1, f"every stage on the same base: {bases}"
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, re.M)


def test_the_daemon_is_the_default_target_and_the_emulator_a_separate_one() -> None:
    stages = dockerfile_stages()
    assert stages[-1].name == "worker", "`docker build` without --target builds the daemon"
    assert load_image().stages == load_image("worker").stages
    assert load_image("emulator").exec_form("ENTRYPOINT") == [*INIT, "callback-worker"]
    assert load_image("emulator").exec_form("CMD")[0] == "emulate"
    copied = {
        stage.name: {item.arguments.split()[0] for item in stage.instructions if item.keyword == "COPY"}
        for stage in stages
    }
    assert "emulator" not in copied["build"], "the daemon's distribution is built without the emulator package"
    assert "emulator" in copied["emulator-build"]
    worker_sources = [item.arguments for item in load_image("worker").instructions if item.keyword == "COPY"]
    assert worker_sources == ["--from=build /opt/venv /opt/venv"]


def test_no_stage_installs_operating_system_packages() -> None:
    runs = build_runs()
    assert runs, "the Dockerfile runs nothing"
    for text in runs:
        assert not re.search(r"\b(apt-get|apt|apk|dnf|yum|microdnf)\b", text), text
    assert re.search(r"^dumb-init==[\w.]+ \\$", LOCK.read_text(), re.M), "the init process comes from the lock"


def test_every_pip_install_can_take_the_wheelhouse_instead_of_an_index() -> None:
    installs = [text for text in build_runs() if f"{PIP} install" in text]
    assert len(installs) == 3, installs
    for text in installs:
        assert text.startswith("--mount=type=bind,from=wheelhouse,target=/wheelhouse "), text
        assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse" in text, text


def test_runtime_stage_contract() -> None:
    image = load_image()
    assert image.exec_form("ENTRYPOINT") == [*INIT, "callback-worker"]
    assert image.exec_form("CMD") == ["run"]
    user = image.last("USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "USER must be numeric so that runAsNonRoot can verify it"
    assert int(uid) >= 10000, "a fixed UID outside the range of the base image's users"
    assert not gid or gid.isdigit()
    env = image.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "the root filesystem is read-only at run time"
    assert env["CALLBACK_WORKER_HEALTH_PORT"] == "8080"
    assert env["CALLBACK_WORKER_HEALTH_HOST"] == ALL_INTERFACES, "the worker's own default is loopback"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_healthcheck_is_exec_form_python_without_curl() -> None:
    options, command = load_image().healthcheck()
    assert command[:2] == ["python", "-c"], "urllib from the image's Python: the image has no curl"
    assert "/healthz" in command[2]
    assert {"interval", "timeout", "start-period", "retries"} <= options.keys()


def test_dockerignore_admits_exactly_what_the_dockerfile_copies() -> None:
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]
    assert rules[0] == "*", ".dockerignore starts by excluding everything"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    every_stage = parse_dockerfile(DOCKERFILE.read_text())
    copies = [item.arguments.split() for item in every_stage if item.keyword == "COPY"]
    sources = {source.rstrip("/") for parts in copies if not parts[0].startswith("--from") for source in parts[:-1]}
    assert sources <= allowed, f"COPY sources excluded by .dockerignore: {sorted(sources - allowed)}"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"


def test_the_build_stage_copies_every_file_the_distribution_names() -> None:
    """pyproject's readme and license files must be in the build context, or the image's distribution lacks them."""
    every_stage = parse_dockerfile(DOCKERFILE.read_text())
    copied = {source for item in every_stage if item.keyword == "COPY" for source in item.arguments.split()[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {project["readme"], *project["license-files"]} <= copied


# ---- the hashed lock of the runtime dependencies ---------------------------------------------------------------


def build_runs() -> list[str]:
    """The ``RUN`` instructions of every stage, in order."""
    return [item.arguments for item in parse_dockerfile(DOCKERFILE.read_text()) if item.keyword == "RUN"]


def test_runtime_dependencies_come_from_the_lock_with_require_hashes() -> None:
    (build,) = [stage for stage in dockerfile_stages() if stage.name == "build"]
    runs = [item.arguments for item in build.instructions if item.keyword == "RUN"]
    (lock_install,) = [index for index, text in enumerate(runs) if "requirements.lock" in text]
    assert re.search(rf"{re.escape(PIP)} install .*--require-hashes.* -r requirements\.lock", runs[lock_install])
    (project_install,) = [index for index, text in enumerate(runs) if re.search(r"pip .*install .*/src\b", text)]
    assert lock_install < project_install, "the locked dependencies first"
    assert "--no-deps" in runs[project_install], "the project brings no unlocked dependency"
    assert f"{PIP} check" in runs[project_install], "the lock satisfies the project's ranges"
    assert "python3 -m venv --without-pip /opt/venv" in runs[0], "the image's environment holds no pip"
    copies = [item.arguments.split() for item in build.instructions if item.keyword == "COPY"]
    assert ["requirements.lock", "./"] in copies


def test_every_pinned_package_of_the_lock_has_a_hash() -> None:
    pins: dict[str, int] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+) \\", line)
            assert match, f"not a pin with hashes: {line!r}"
            current = match[1]
            pins[current] = 0
        elif line.strip().startswith("--hash=sha256:"):
            assert current is not None
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            pins[current] += 1
    assert pins, "the lock pins nothing"
    assert [name for name, count in pins.items() if count == 0] == []


def test_the_lock_header_names_no_package_index() -> None:
    text = LOCK.read_text()
    assert "--generate-hashes" in text.splitlines()[4], "the header says how the lock was made"
    assert not re.search(r"--(extra-)?index-url|--find-links|--trusted-host|://", text)


# ---- the ENTRYPOINT + CMD command line -------------------------------------------------------------------------


def program(cmd: list[str] | None = None) -> list[str]:
    """ENTRYPOINT + CMD (or ``cmd``) without the ``dumb-init`` init, resolved on the image's PATH."""
    image = load_image()
    entrypoint = image.exec_form("ENTRYPOINT")
    assert entrypoint[: len(INIT)] == INIT
    argv = entrypoint[len(INIT) :] + (image.exec_form("CMD") if cmd is None else cmd)
    executable = shutil.which(argv[0], path=image_environment()["PATH"])
    assert executable is not None, f"{argv[0]} is not on the image's PATH"
    assert Path(executable).parent == BIN, f"{argv[0]} resolved outside the virtual environment: {executable}"
    return [executable, *argv[1:]]


def run_program(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False, cwd="/")


def test_entrypoint_with_handlers_lists_echo() -> None:
    result = run_program(program(["handlers"]), image_environment())
    assert result.returncode == 0, result.stderr
    assert re.search(r"^echo\s", result.stdout, re.M), result.stdout


def test_entrypoint_and_cmd_start_the_daemon_which_names_a_missing_queue_url() -> None:
    result = run_program(program(), image_environment())
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, "one line for the operator"
    assert "CALLBACK_WORKER_QUEUE_URL" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    _, command = load_image().healthcheck()
    executable = shutil.which(command[0], path=image_environment()["PATH"])
    assert executable is not None
    env = image_environment({"CALLBACK_WORKER_HEALTH_PORT": str(port)})
    return subprocess.run([executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30, check=False)


# ---- the HEALTHCHECK against a stand-in server -----------------------------------------------------------------


class _Probe(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012 - shared with the test through the class, reset per server

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = b'{"alive": true}'
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the recorded paths."""


@pytest.fixture
def probe_server() -> Iterator[tuple[int, type[_Probe]]]:
    handler = type("Probe", (_Probe,), {"status": 200, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthcheck_passes_on_200(probe_server: tuple[int, type[_Probe]]) -> None:
    port, handler = probe_server
    result = run_healthcheck(port)
    assert result.returncode == 0, result.stderr
    assert handler.paths == ["/healthz"]


def test_healthcheck_fails_on_503(probe_server: tuple[int, type[_Probe]]) -> None:
    port, handler = probe_server
    handler.status = 503
    result = run_healthcheck(port)
    assert result.returncode == 1, "Docker reads exit 1 as unhealthy (2 is reserved)"
    assert handler.paths == ["/healthz"]


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert run_healthcheck(free_port()).returncode == 1


# ---- the whole container contract against the real daemon --------------------------------------------------


def test_image_command_serves_the_healthcheck_and_drains_on_sigterm(queue_url: str) -> None:
    """``callback-worker run`` with the image's environment: the HEALTHCHECK passes, SIGTERM exits 0."""
    port = free_port()
    aws = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    env = image_environment(
        {
            **aws,
            "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9",
            # No SageMaker here: with tokens verified (the default), start-up would stop on the unreachable endpoint.
            "CALLBACK_WORKER_VERIFY_TOKENS": "false",
            "CALLBACK_WORKER_QUEUE_URL": queue_url,
            "CALLBACK_WORKER_HANDLER": "echo",
            "CALLBACK_WORKER_HEALTH_PORT": str(port),
            "CALLBACK_WORKER_HEALTH_HOST": "127.0.0.1",
            "CALLBACK_WORKER_WAIT_TIME": "1",
            "CALLBACK_WORKER_SHUTDOWN_GRACE": "5",
        }
    )
    with subprocess.Popen(
        program(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/"
    ) as daemon:
        try:
            deadline = time.monotonic() + 30
            while run_healthcheck(port).returncode != 0:
                assert daemon.poll() is None, "the daemon exited before it was healthy"
                assert time.monotonic() < deadline, "the HEALTHCHECK did not pass within 30 s"
                time.sleep(0.2)
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=20)
            elapsed = time.monotonic() - started
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            output = daemon.stdout.read() if daemon.stdout else ""
    assert code == 0, output
    assert elapsed < 5 + 2, f"an idle worker drains at once (took {elapsed:.1f} s)"
    assert run_healthcheck(port).returncode == 1, "nothing answers after the exit"
