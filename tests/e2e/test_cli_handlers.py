"""``callback-worker handlers`` as a subprocess: built-in and plugin handlers listed with their source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.plugin_factory import make_plugin, module_name

REPO = Path(__file__).resolve().parents[2]

GOOD_PLUGIN = """
async def greet(context):
    return {"greeting": "hello"}
"""
BROKEN_PLUGIN = """
raise ImportError("a dependency of this plugin is missing")
"""


def run_handlers(plugin_root: Path) -> subprocess.CompletedProcess[str]:
    path = [str(plugin_root), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(part for part in path if part)}
    return subprocess.run(
        [sys.executable, "-m", "callback_worker.cli", "handlers"],
        cwd=plugin_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_handlers_lists_builtin_and_plugin(tmp_path: Path) -> None:
    make_plugin(tmp_path, "acme-greeter", {"greet": "greet"}, GOOD_PLUGIN, version="1.2.3")
    result = run_handlers(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "callback_worker.handlers.echo:EchoHandler (sagemaker-callback-worker " in lines["echo"]
    assert lines["greet"].split(None, 1)[1] == f"{module_name('acme-greeter')}:greet (acme-greeter 1.2.3)"
    assert list(lines) == sorted(lines)


def test_a_broken_plugin_is_listed_with_its_error_and_hides_no_other(tmp_path: Path) -> None:
    make_plugin(tmp_path, "acme-broken", {"broken": "handler"}, BROKEN_PLUGIN, version="0.1")
    make_plugin(tmp_path, "acme-greeter", {"greet": "greet"}, GOOD_PLUGIN, version="1.2.3")
    result = run_handlers(tmp_path)
    assert result.returncode == 2
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert {"broken", "echo", "greet"} <= set(lines)
    assert lines["greet"].split(None, 1)[1] == f"{module_name('acme-greeter')}:greet (acme-greeter 1.2.3)"
    broken = lines["broken"].split(None, 1)[1]
    assert broken.startswith("FAILED TO LOAD: handler 'broken' from ")
    assert "(acme-broken 0.1) failed to load: ImportError: a dependency of this plugin is missing" in broken
    assert result.stderr == "callback-worker: 1 handler(s) cannot be used: broken\n"


def test_a_name_claimed_twice_lists_both_registrations_marked_and_every_other_handler(tmp_path: Path) -> None:
    make_plugin(tmp_path, "acme-echo", {"echo": "greet"}, GOOD_PLUGIN, version="2.0")
    make_plugin(tmp_path, "acme-broken", {"broken": "handler"}, BROKEN_PLUGIN, version="0.1")
    make_plugin(tmp_path, "acme-greeter", {"greet": "greet"}, GOOD_PLUGIN, version="1.2.3")
    result = run_handlers(tmp_path)
    assert result.returncode == 2
    listed = [line.split(None, 1) for line in result.stdout.splitlines()]
    echoes = [text for name, text in listed if name == "echo"]
    assert len(echoes) == 2, result.stdout
    assert all(text.startswith("DUPLICATE: handler name 'echo' is registered twice: ") for text in echoes)
    assert all("(acme-echo 2.0)" in text and "(sagemaker-callback-worker " in text for text in echoes)
    assert next(text for name, text in listed if name == "broken").startswith("FAILED TO LOAD: handler 'broken'")
    assert ["greet", f"{module_name('acme-greeter')}:greet (acme-greeter 1.2.3)"] in listed
    assert result.stderr == "callback-worker: 2 handler(s) cannot be used: broken, echo\n"
