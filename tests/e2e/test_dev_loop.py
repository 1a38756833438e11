"""``callback-worker dev`` as a subprocess: the local loop a user starts with one command, then uses from another
shell with the variables it prints — ``send-test-message`` (with token verification on) and the pasted pipeline."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from callback_worker.dev import isolate

REPO = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops the worker"


class DevLoop:
    """A running ``callback-worker dev``; its stdout read line by line on a thread."""

    def __init__(self, env: dict[str, str], program: list[str] | None = None) -> None:
        """``program`` runs the console script (default: this interpreter's ``-m callback_worker.cli``)."""
        program = program or [sys.executable, "-m", "callback_worker.cli"]
        self.process = subprocess.Popen(
            [*program, "dev", "--sqs-port", "0", "--sagemaker-port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        self.errors: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        self.errors.extend(self.process.stderr)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(READY) for line in self.printed):
            if self.process.poll() is not None:
                raise AssertionError(f"dev exited {self.process.returncode}: {self.printed}")
            self.printed.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))

    def exports(self) -> dict[str, str]:
        pairs = (line.removeprefix("export ").partition("=") for line in self.printed if line.startswith("export "))
        return {name: value for name, _, value in pairs}

    def block(self, first: str, last: str) -> str:
        start = next(i for i, line in enumerate(self.printed) if line.startswith(first))
        end = next(i for i, line in enumerate(self.printed) if i > start and line == last)
        return "\n".join(self.printed[start : end + 1])

    def close(self) -> None:
        """Kill the loop if it still runs; join the readers and close the pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=30)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def stop(self) -> tuple[int, str, str]:
        """SIGINT, as Ctrl-C sends it; the exit code, everything printed, and stderr."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        for reader in self.readers:
            reader.join(timeout=30)
        while not self.lines.empty():
            self.printed.append(self.lines.get())
        return code, "\n".join(self.printed), "".join(self.errors)


@pytest.fixture
def dev_loop(tmp_path: Path) -> Iterator[DevLoop]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CALLBACK_WORKER_", "AWS_"))}
    env |= {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        # The user's own settings are kept; credentials and endpoints of theirs are replaced by the local ones.
        "CALLBACK_WORKER_VERIFY_TOKENS": "true",
        "CALLBACK_WORKER_WAIT_TIME": "1",
        "CALLBACK_WORKER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/production",
        "AWS_PROFILE": "production",
        "AWS_ACCESS_KEY_ID": "AKIAREALLOOKINGKEY00",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
        "AWS_ENDPOINT_URL": "https://example.invalid",
        "AWS_REGION": "us-east-1",
    }
    loop = DevLoop(env)
    try:
        yield loop
    finally:
        loop.close()


def user_env(exports: dict[str, str]) -> dict[str, str]:
    """The other shell: the printed variables, nothing of the test's AWS environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CALLBACK_WORKER_", "AWS_"))}
    bin_dir = str(Path(sys.executable).parent)
    return env | exports | {"PATH": os.pathsep.join([bin_dir, env.get("PATH", "")])}


def wait_for_step(client: object, arn: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        [step] = client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]  # type: ignore[attr-defined]
        if step["StepStatus"] != "Executing" or time.monotonic() > deadline:
            return dict(step)
        time.sleep(0.2)


def test_dev_runs_the_loop_send_test_message_is_verified_and_answered_and_ctrl_c_drains(dev_loop: DevLoop) -> None:
    dev_loop.wait_ready()
    exports = dev_loop.exports()
    assert set(exports) >= {"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SAGEMAKER", "QUEUE_URL"}
    assert exports["QUEUE_URL"].startswith(exports["AWS_ENDPOINT_URL_SQS"])  # the user's queue URL was replaced
    env = user_env(exports)
    sent = subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", "send-test-message", "--queue-url", exports["QUEUE_URL"],
         "--argument", "handler=echo", "--argument", "greeting=hello"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (sent.returncode, sent.stderr) == (0, ""), sent.stderr
    arn = sent.stdout.splitlines()[0].removeprefix("started execution ")
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER"],
        region_name="us-east-1",
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
    )
    step = wait_for_step(sagemaker, arn)
    assert step["StepStatus"] == "Succeeded", step
    assert step["Metadata"]["Callback"]["OutputParameters"] == [{"Name": "greeting", "Value": "hello"}]  # type: ignore[index]

    code, out, err = dev_loop.stop()
    assert code == 0, err
    assert out.rstrip().endswith("callback-worker dev: stopped")
    assert "step answered" in err
    assert "Traceback" not in err


def test_the_printed_pipeline_snippet_runs_as_pasted(dev_loop: DevLoop) -> None:
    dev_loop.wait_ready()
    snippet = dev_loop.block("python - <<'EOF'", "EOF")
    result = subprocess.run(
        ["bash", "-c", snippet],
        env=user_env(dev_loop.exports()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    started, answered = result.stdout.splitlines()
    assert started.startswith("started arn:aws:sagemaker:us-east-1:123456789012:pipeline/my-callback-pipeline/")
    assert answered == "Succeeded [{'Name': 'greeting', 'Value': 'hello'}]"
    assert dev_loop.stop()[0] == 0


def test_doctor_with_the_printed_variables_asks_sts_locally_and_finds_no_problem(dev_loop: DevLoop) -> None:
    dev_loop.wait_ready()
    exports = dev_loop.exports()
    assert exports["AWS_ENDPOINT_URL_STS"] == exports["AWS_ENDPOINT_URL_SQS"]
    env = user_env(exports) | {"CALLBACK_WORKER_QUEUE_URL": exports["QUEUE_URL"]}
    result = subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", "doctor"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "ok    identity: arn:aws:sts::123456789012:user/moto (account 123456789012)" in result.stdout.splitlines()
    assert dev_loop.stop()[0] == 0


def test_dev_polls_briefly_unless_told_otherwise() -> None:
    """Ctrl-C waits for the receive under way: dev's default long poll is short, and the user's own is kept."""
    chosen: dict[str, str] = {}
    isolate(chosen)
    mine = {"CALLBACK_WORKER_WAIT_TIME": "15"}
    isolate(mine)
    assert (chosen["CALLBACK_WORKER_WAIT_TIME"], mine["CALLBACK_WORKER_WAIT_TIME"]) == ("1", "15")


def test_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {key: value for key, value in os.environ.items() if not key.startswith("CALLBACK_WORKER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, "-m", "callback_worker.cli", "dev", "--sqs-port", str(port)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"callback-worker: --sqs-port {port}: ")
    assert "choose another port, or 0" in line
