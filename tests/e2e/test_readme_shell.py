"""README's shell blocks, run as a reader would paste them: every ```sh block runs unless an HTML comment right
before it says why not (``<!-- not run: reason -->``); a block that starts a server (``<!-- serves: HOST:PORT -->``)
passes once the server answers on that address, and is then stopped. Each runs in its own temporary directory, with
this environment's console script first on PATH and the offline AWS environment (dummy credentials, every endpoint
on a closed local port), so nothing reaches AWS."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from callback_worker.offline import offline_aws_env

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"(?:<!-- (?P<kind>not run|serves): *(?P<note>.*?) *-->\n)?```sh\n(?P<code>.*?)\n```", re.DOTALL)
SERVER_START = 60.0


@dataclass(frozen=True)
class Block:
    line: int
    kind: str
    note: str
    code: str


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, match.start("code")), match["kind"] or "run", match["note"] or "", match["code"])
        for match in BLOCK.finditer(text)
    ]


RUNNABLE = [block for block in blocks() if block.kind != "not run"]


def environment() -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CALLBACK_WORKER_"))}
    path = os.pathsep.join([str(Path(sys.executable).parent), kept.get("PATH", "")])
    return {**kept, **offline_aws_env(), "PATH": path}


def test_every_block_not_run_says_why_and_some_run() -> None:
    assert [block.line for block in blocks() if block.kind == "not run" and not block.note] == []
    assert [block for block in RUNNABLE if block.kind == "run"], "at least one README block runs to completion"


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"line{block.line}" for block in RUNNABLE])
def test_the_readme_block_runs(block: Block, tmp_path: Path) -> None:
    command = ["bash", "-euo", "pipefail", "-c", block.code]
    if block.kind == "run":
        result = subprocess.run(
            command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"README line {block.line}:\n{block.code}\n{result.stdout}{result.stderr}"
        return
    host, port = block.note.rsplit(":", 1)
    env, pipe, merged = environment(), subprocess.PIPE, subprocess.STDOUT
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=pipe, stderr=merged, start_new_session=True)
    try:
        answered = wait_for_port(host, int(port), process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert answered, f"README line {block.line}: nothing answered on {block.note}\n{output.decode(errors='replace')}"


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes]) -> bool:
    """Whether something accepts connections on ``host:port`` before the block's process ends or time runs out."""
    deadline = time.monotonic() + SERVER_START
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False
