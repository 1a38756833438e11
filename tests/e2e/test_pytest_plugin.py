"""The testing kit's pytest plugin as a handler author meets it: loaded through the ``pytest11`` entry point in a
pytest run of their own project, with the fixtures there and cheap to load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

AUTHOR_TESTS = """
from callback_worker import Retry


class Gate:
    def __call__(self, context):
        if context.state is None:
            return Retry(delay=300, state={"asked": True})
        return {"approved": True}


def test_context(callback_context):
    context = callback_context({"x": 1}, state={"s": 2})
    assert (context.arguments, context.state, context.attempt) == ({"x": 1}, {"s": 2}, 1)


def test_harness(callback_harness):
    result = callback_harness(Gate(), name="gate").run_sync({"x": 1})
    assert result.outputs == {"approved": "true"}
    assert [(c.delay, c.state) for c in result.continuations] == [(300.0, {"asked": True})]
"""


#: A handler author's strict settings (pytest-asyncio, installed here, asks for its loop scope).
INI = "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(INI)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "CALLBACK_WORKER_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_handler_authors_tests_get_the_fixtures_from_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "test_gate.py").write_text(AUTHOR_TESTS)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_plugin_is_listed_and_loads_nothing_of_the_worker(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--trace-config", "--co")
    assert "callback_worker.testing.plugin" in result.stdout, result.stdout
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, callback_worker.testing.plugin as p; "
         "print(sorted(m for m in sys.modules if m.startswith('callback_worker.') and m != p.__name__))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "['callback_worker.testing']"
