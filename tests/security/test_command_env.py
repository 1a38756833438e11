"""Finding 3 (medium): what the ``command`` handler's program inherits from the worker.

Before: the program got the worker's whole environment — its AWS credentials, the ``http`` handler's secret headers
(``CALLBACK_WORKER_HTTP_HEADERS``), every other setting — and ``command_args`` were appended right after ``ARGV``, where
a step could slip in options the program was not configured with. Now it gets a minimal environment (``PATH``,
``LANG``, ``LC_ALL``, ``TZ``, ``HOME``, ``TMPDIR``, those set) plus its ``CALLBACK_*`` variables and the variables
``CALLBACK_WORKER_COMMAND_PASS_ENV`` names, and the step's arguments come after ``--``.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from callback_worker.handlers.command import CommandHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import JSONValue
from tests.handler_support import HANDLER_ARGUMENT, TOKEN, callback_context, clear_settings, set_settings

PREFIX = "CALLBACK_WORKER_COMMAND_"
SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
SECRET_HEADERS = '{"Authorization": "Bearer hdr-s3cret"}'
PRINT_ENVIRONMENT = """
    import json, os, sys
    print(json.dumps({"env": dict(os.environ), "argv": sys.argv[1:]}))
"""
#: What the program may inherit from the worker without ``PASS_ENV`` (those set).
BASE_ENVIRONMENT = {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR"}
#: Set by the child Python itself when the locale is C (PEP 538), not inherited.
SET_BY_PYTHON = {"LC_CTYPE"}


@pytest.fixture(autouse=True)
def worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker with AWS credentials and the ``http`` handler's secret headers in its environment."""
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)
    monkeypatch.setenv(f"{PREFIX}KILL_GRACE", "0.5")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("CALLBACK_WORKER_HTTP_HEADERS", SECRET_HEADERS)
    monkeypatch.setenv("PATH", os.environ.get("PATH") or "/usr/bin:/bin")


def printing_handler(monkeypatch: pytest.MonkeyPatch, *configured: str, **settings: str) -> CommandHandler:
    argv = [sys.executable, "-c", textwrap.dedent(PRINT_ENVIRONMENT), *configured]
    monkeypatch.setenv(f"{PREFIX}ARGV", json.dumps(argv))
    set_settings(monkeypatch, PREFIX, settings)
    return CommandHandler()


async def child_view(handler: CommandHandler, arguments: dict[str, JSONValue]) -> tuple[dict[str, str], list[str]]:
    """The environment and the arguments the program saw."""
    outputs = await handler(callback_context("command", TOKEN, arguments))
    return json.loads(str(outputs["env"])), json.loads(str(outputs["argv"]))


async def test_the_program_sees_neither_credentials_nor_other_handlers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    env, _ = await child_view(printing_handler(monkeypatch), {"rows": 3})
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "CALLBACK_WORKER_HTTP_HEADERS" not in env
    assert SECRET_KEY not in json.dumps(env)
    assert "hdr-s3cret" not in json.dumps(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["CALLBACK_ARG_ROWS"] == "3"
    assert env["CALLBACK_PIPELINE_NAME"] == "p"
    inherited = {name for name in env if not name.startswith("CALLBACK_")} - SET_BY_PYTHON
    assert inherited <= BASE_ENVIRONMENT
    assert not {name for name in env if name.startswith("CALLBACK_WORKER_")}


async def test_pass_env_adds_only_the_named_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = printing_handler(monkeypatch, pass_env=" AWS_SECRET_ACCESS_KEY , NOT_SET_ANYWHERE_X")
    env, _ = await child_view(handler, {})
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY
    assert "CALLBACK_WORKER_HTTP_HEADERS" not in env
    assert "NOT_SET_ANYWHERE_X" not in env
    assert "PATH" in env


async def test_step_arguments_come_after_a_separator(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = printing_handler(monkeypatch, "--configured", allow_args="true")
    _, argv = await child_view(handler, {"command_args": ["--output=/etc/cron.d/x", "data"]})
    assert argv == ["--configured", "--", "--output=/etc/cron.d/x", "data"]


@pytest.mark.parametrize("value", ["AWS-KEY", "A,1B", "PATH;rm"])
def test_a_bad_pass_env_stops_start_up_naming_the_setting(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(f"{PREFIX}PASS_ENV", value)
    with pytest.raises(ConfigurationError, match=f"{PREFIX}PASS_ENV") as caught:
        CommandHandler()
    assert "is not a variable name" in str(caught.value)
