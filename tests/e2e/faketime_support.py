"""Stepping the wall clock of one running worker process with libfaketime, its monotonic clock left alone.

libfaketime (Debian's ``faketime`` package) is preloaded into the child (``LD_PRELOAD``) and reads its offset from
``FAKETIME_TIMESTAMP_FILE`` on every clock read (``FAKETIME_NO_CACHE=1``): rewriting that file steps the wall clock
of a process that is already running, as an NTP step does. By default libfaketime shifts ``CLOCK_MONOTONIC`` (and
``CLOCK_BOOTTIME``) by the same offset; ``FAKETIME_DONT_FAKE_MONOTONIC=1`` keeps them real. :func:`check_libfaketime`
proves both in a child under the very environment the worker gets, and fails the test loudly if either does not hold.

Known limit: libfaketime 0.9.10 (Debian 12) with ``FAKETIME_DONT_FAKE_MONOTONIC`` breaks
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` (wolfcw/libfaketime#426), which Python 3.11's ``time.sleep``
uses: it raises ``OSError: [Errno 22] Invalid argument``. The worker does not call it: its event loop waits in
``epoll_wait`` and its threads on semaphores, both of which the probe checks. A plugin under test must not call it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

LIBFAKETIME = Path("/usr/lib") / (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu") / "faketime"
LIBFAKETIME /= "libfaketime.so.1"
INSTALL_HINT = "install Debian's faketime package (apt-get install faketime; .ci/run installs it when missing)"
ERRNO_22_HINT = (
    "the worker hit libfaketime 0.9.10's clock_nanosleep bug (wolfcw/libfaketime#426): something in it called "
    "time.sleep, which fails with EINVAL under FAKETIME_DONT_FAKE_MONOTONIC"
)


class SteppedClock:
    """The offset file of one faked process: ``step(seconds)`` moves its wall clock by that much from real time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.step(0)

    def step(self, seconds: int) -> None:
        """Set the offset from real time; the process sees it at its next clock read. Written whole (a rename), so
        that libfaketime never reads a half-written file."""
        staged = self.path.with_name(f"{self.path.name}.new")
        staged.write_text(f"{seconds:+d}\n", encoding="ascii")
        os.replace(staged, self.path)
        self.offset = seconds

    def env(self) -> dict[str, str]:
        """The environment that preloads libfaketime on this file, faking the wall clock only."""
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",  # read the file on every wall-clock read: a step applies at once
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # CLOCK_MONOTONIC stays the kernel's (libfaketime fakes it otherwise)
        }


# Run under the preload: steps its own clock file and reports what the clocks said, and whether the event loop,
# a threaded wait and an aiohttp request still work with the wall clock 12 hours ahead.
PROBE = r"""
import asyncio, json, os, sys, threading, time
import aiohttp

def step(seconds):
    path = os.environ["FAKETIME_TIMESTAMP_FILE"]
    with open(path + ".new", "w", encoding="ascii") as staged:
        staged.write(f"{seconds:+d}\n")
    os.replace(path + ".new", path)

async def loop_checks(url):
    started = time.monotonic()
    await asyncio.sleep(0.2)
    slept = time.monotonic() - started
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        status = response.status
    return slept, status

readings = {}
for offset in (0, -90, 43200):
    step(offset)
    readings[offset] = (time.time(), time.monotonic())
print(json.dumps(readings), flush=True)  # first: a faked monotonic clock may hang what follows
started = time.monotonic()
threading.Event().wait(0.2)
waited = time.monotonic() - started
slept, status = asyncio.run(loop_checks(sys.argv[1]))
step(0)
print(json.dumps({"waited": waited, "slept": slept, "status": status}))
"""


def check_libfaketime(scratch: Path, url: str) -> None:
    """Fail the test unless libfaketime, preloaded as :meth:`SteppedClock.env` does, steps ``time.time()`` while the
    process runs and leaves ``time.monotonic()`` the kernel's, and unless asyncio, threads and aiohttp (to ``url``)
    work in such a process."""
    if not LIBFAKETIME.is_file():
        pytest.fail(f"libfaketime is missing ({LIBFAKETIME} not found): {INSTALL_HINT}")
    clock = SteppedClock(scratch / "probe-offset")
    wall_before, monotonic_before = time.time(), time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, url],
            env={**os.environ, **clock.env()},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        stdout, problem = result.stdout, "" if result.returncode == 0 else f"failed:\n{result.stderr}"
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or b""
        stdout = output.decode() if isinstance(output, bytes) else output
        problem = "hung for 30 s"
    wall_after, monotonic_after = time.time(), time.monotonic()
    lines = stdout.splitlines()
    assert lines, f"a Python child under libfaketime {problem or 'printed nothing'}"
    readings = {int(offset): (wall, monotonic) for offset, (wall, monotonic) in json.loads(lines[0]).items()}
    seen = f"clocks seen under libfaketime: {readings}; outside: wall {wall_before}..{wall_after}, monotonic "
    seen += f"{monotonic_before}..{monotonic_after}"
    assert wall_before - 1 <= readings[0][0] <= wall_after + 1, f"offset +0 did not give the real wall clock; {seen}"
    for offset in (-90, 43200):
        moved = readings[offset][0] - readings[0][0]
        assert abs(moved - offset) < 1, f"rewriting the offset file moved time.time() by {moved:.1f} s; {seen}"
    for offset, (_, monotonic) in readings.items():
        # CLOCK_MONOTONIC is one clock for the whole system: faked, it would leave the parent's interval.
        assert monotonic_before <= monotonic <= monotonic_after, (
            f"time.monotonic() is faked at offset {offset:+d} (FAKETIME_DONT_FAKE_MONOTONIC not honoured); {seen}"
        )
    assert not problem, f"a Python child under libfaketime {problem}"
    report = json.loads(lines[1])
    assert 0.2 <= report["waited"] < 5, f"a threaded wait of 0.2 s took {report['waited']} s under libfaketime"
    assert 0.2 <= report["slept"] < 5, f"asyncio.sleep(0.2) took {report['slept']} s under libfaketime"
    assert report["status"] == 200, f"aiohttp under libfaketime got {report['status']} from {url}"


class Replica:
    """One ``callback-worker run`` process; its stderr (JSON log lines) is collected as it comes."""

    def __init__(self, name: str, env: Mapping[str, str], clock: SteppedClock | None = None) -> None:
        self.name = name
        self.clock = clock
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callback_worker.cli", "run"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name=f"replica-{name}-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        """The log lines so far, parsed (a line that is not JSON as ``{"event": line}``)."""
        parsed: list[dict[str, Any]] = []
        for line in list(self.lines):
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            parsed.append(value if isinstance(value, dict) else {"event": line})
        return parsed

    def logged(self, event: str) -> bool:
        return any(entry.get("event") == event for entry in self.events())

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then wait for the exit; its code, or None if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self._close()
        return code

    def kill(self) -> None:
        """Kill it if it still runs (after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def running(self) -> bool:
        return self.process.poll() is None

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def describe(self) -> str:
        clock = "real wall clock" if self.clock is None else f"wall clock stepped {self.clock.offset:+d} s"
        text = "\n".join(f"    {line}" for line in self.lines)
        if "[Errno 22] Invalid argument" in text:
            text += f"\n    ({ERRNO_22_HINT})"
        return f"replica {self.name} ({clock}), exit code {self.process.returncode}, stderr:\n{text}"


def eventually(condition: Callable[[], bool], within: float, every: float = 0.1) -> bool:
    """Poll ``condition`` until it holds (True) or ``within`` seconds have passed (False)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
