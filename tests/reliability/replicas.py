"""``callback-worker run`` replicas as subprocesses: start, SIGKILL, SIGTERM, restart, and their JSON logs.

Every incarnation of every replica writes its stderr (structlog JSON, one event a line) to a file of its own, so
nothing a killed process wrote is lost and no pipe can fill up and stall a worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from callback_worker.offline import offline_aws_env
from tests.fakes import TEST_SIGNING_KEY

REGION = "us-east-1"
_STARTED_EVENT = '"worker started"'
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9]{10,}")


def worker_env(
    *,
    queue_url: str,
    sqs_endpoint: str,
    sagemaker_endpoint: str,
    settings: Mapping[str, str] | None = None,
    python_path: Sequence[Path] = (),
) -> dict[str, str]:
    """The environment of a replica: every AWS endpoint, the region and dummy credentials explicit.

    ``settings`` are ``CALLBACK_WORKER_<NAME>`` values by lower-case name; ``python_path`` comes first on
    ``PYTHONPATH`` (plugin distributions).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CALLBACK_WORKER_", "AWS_"))}
    env.update(
        {
            **offline_aws_env(REGION),
            "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
            "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_endpoint,
            "PYTHONPATH": os.pathsep.join([*map(str, python_path), *sys.path]),
            "CALLBACK_WORKER_QUEUE_URL": queue_url,
            "CALLBACK_WORKER_LOG_FORMAT": "json",
            # Short polls: scenarios use visibility timeouts of a few seconds, which a poll may not outlast.
            "CALLBACK_WORKER_WAIT_TIME": "2",
            # One key shared by every replica, as deploy/ ships it: a link one replica sent, another takes back.
            "CALLBACK_WORKER_SIGNING_KEY": TEST_SIGNING_KEY.decode(),
        }
    )
    env.update({f"CALLBACK_WORKER_{name.upper()}": value for name, value in (settings or {}).items()})
    return env


@dataclass
class Incarnation:
    """One process of a replica."""

    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)


class Replica:
    """One replica slot: at most one live process at a time, restarted at will."""

    def __init__(self, index: int, env: Mapping[str, str], log_dir: Path) -> None:
        self.index = index
        self.env = dict(env)
        self.log_dir = log_dir
        self.incarnations: list[Incarnation] = []
        self.exit_codes: list[int] = []

    @property
    def current(self) -> Incarnation | None:
        """The live incarnation, if any."""
        if self.incarnations and self.incarnations[-1].process.returncode is None:
            return self.incarnations[-1]
        return None

    @property
    def pid(self) -> int:
        """The live process's id."""
        if self.current is None:
            raise RuntimeError(f"replica {self.index} is not running")
        return self.current.process.pid

    def start(self) -> None:
        """Start a new process (the previous one must have ended)."""
        if self.current is not None:
            raise RuntimeError(f"replica {self.index} is already running")
        path = self.log_dir / f"replica-{self.index}.{len(self.incarnations)}.log"
        log = path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "callback_worker.cli", "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        self.incarnations.append(Incarnation(process, path, log))

    def is_alive(self) -> bool:
        """Whether the live incarnation is still running (reaps it if it ended)."""
        current = self.current
        return current is not None and current.process.poll() is None

    def wait_started(self, timeout: float = 60.0) -> None:
        """Wait until the live incarnation logged ``worker started`` (its pollers run)."""
        current = self.current
        if current is None:
            raise RuntimeError(f"replica {self.index} is not running")
        deadline = time.monotonic() + timeout
        while _STARTED_EVENT not in current.log_path.read_text(errors="replace"):
            if current.process.poll() is not None:
                raise AssertionError(f"replica {self.index} exited with {current.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"replica {self.index} did not start within {timeout} s: {self.tail()}")
            time.sleep(0.1)

    def stop(self, signum: signal.Signals, timeout: float = 60.0) -> int:
        """Send ``signum`` to the live incarnation and wait for it to exit; returns its exit code."""
        self.send(signum)
        return self.wait_exit(timeout)

    def send(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the live incarnation."""
        if self.current is None:
            raise RuntimeError(f"replica {self.index} is not running")
        self.current.process.send_signal(signum)

    def wait_exit(self, timeout: float = 60.0) -> int:
        """Wait for the live incarnation to exit (killing it past ``timeout``); returns its exit code."""
        current = self.current
        if current is None:
            raise RuntimeError(f"replica {self.index} is not running")
        try:
            code = current.process.wait(timeout)
        except subprocess.TimeoutExpired:
            current.process.kill()
            current.process.wait()
            raise AssertionError(f"replica {self.index} did not exit within {timeout} s") from None
        finally:
            current.log.close()
        self.exit_codes.append(code)
        return code

    def close(self) -> None:
        """Kill whatever still runs and close every log file."""
        for incarnation in self.incarnations:
            if incarnation.process.poll() is None:
                incarnation.process.kill()
            incarnation.process.wait()
            incarnation.log.close()

    def tail(self, lines: int = 15) -> str:
        """The end of the latest incarnation's log."""
        if not self.incarnations:
            return "(never started)"
        return "\n".join(self.incarnations[-1].log_path.read_text(errors="replace").splitlines()[-lines:])


class ReplicaSet:
    """Several replicas sharing one environment; a context manager that kills what is left on exit."""

    def __init__(self, count: int, env: Mapping[str, str], log_dir: Path, envs: Sequence[Mapping[str, str]] = ()):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.replicas = [Replica(index, envs[index] if envs else env, log_dir) for index in range(count)]

    def __enter__(self) -> ReplicaSet:
        for replica in self.replicas:
            replica.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for replica in self.replicas:
            replica.close()

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas)

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    def __len__(self) -> int:
        return len(self.replicas)

    def wait_started(self, timeout: float = 60.0) -> None:
        for replica in self.replicas:
            replica.wait_started(timeout)

    def terminate_all(self, timeout: float = 60.0) -> list[int]:
        """SIGTERM every live replica and wait for each; returns their exit codes. A replica the killer restarted a
        moment ago is first let start: a SIGTERM that arrives while the interpreter still imports (before any
        Python code can catch it) ends the process with -15, which says nothing about the worker's drain."""
        live = [replica for replica in self.replicas if replica.current is not None]
        for replica in live:
            replica.wait_started(timeout)
        return [replica.stop(signal.SIGTERM, timeout) for replica in live]

    def log_paths(self) -> list[Path]:
        return [incarnation.log_path for replica in self.replicas for incarnation in replica.incarnations]


@dataclass
class WorkerLogs:
    """Every line the replicas wrote, parsed."""

    events: list[dict[str, Any]]
    unparsed: list[str]
    text: str

    @classmethod
    def read(cls, paths: Iterable[Path]) -> WorkerLogs:
        events: list[dict[str, Any]] = []
        unparsed: list[str] = []
        texts: list[str] = []
        for path in paths:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            texts.append(text)
            # A SIGKILL may cut the last line short: only newline-terminated lines are complete.
            for line in text.split("\n")[:-1]:
                try:
                    event = json.loads(line)
                except ValueError:
                    unparsed.append(line)
                    continue
                if isinstance(event, dict):
                    events.append(event)
                else:
                    unparsed.append(line)
        return cls(events, unparsed, "\n".join(texts))

    def count(self, event: str) -> int:
        return sum(1 for item in self.events if item.get("event") == event)

    def redeliveries(self) -> int:
        """Deliveries of a message that had been received before (``receive_count`` > 1) that reached an outcome."""
        return len(
            {
                (item.get("message_id"), item.get("receive_count"))
                for item in self.events
                if isinstance(item.get("receive_count"), int) and item["receive_count"] > 1
            }
        )

    def leaked_tokens(self, tokens: Iterable[str]) -> list[str]:
        """The tokens that appear whole anywhere in the logs (in any run of 10+ letters and digits)."""
        wanted = set(tokens)
        found: set[str] = set()
        for match in _TOKEN_LIKE.finditer(self.text):
            run = match.group()
            found.update(run[start : start + 10] for start in range(len(run) - 9))
        return sorted(wanted & found)
