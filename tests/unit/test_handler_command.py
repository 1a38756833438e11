"""handlers/command.py: a configured program, its environment and stdin, its answer, its timeout and its stopping."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from callback_worker.handlers._context import argument_env_name
from callback_worker.handlers.command import CommandHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, StopHook
from callback_worker.worker.outcome import failure
from tests.handler_support import (
    HANDLER_ARGUMENT,
    TOKEN,
    alive,
    callback_context,
    clear_settings,
    registered_handlers,
    set_settings,
)

PREFIX = "CALLBACK_WORKER_COMMAND_"


def context(arguments: Mapping[str, JSONValue] | None = None, attempt: int = 1) -> CallbackContext:
    return callback_context("command", TOKEN, arguments, attempt=attempt)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)
    monkeypatch.setenv(f"{PREFIX}KILL_GRACE", "0.5")


def python(monkeypatch: pytest.MonkeyPatch, script: str, **settings: str) -> CommandHandler:
    """A command handler running ``script`` with this interpreter."""
    monkeypatch.setenv(f"{PREFIX}ARGV", json.dumps([sys.executable, "-c", textwrap.dedent(script)]))
    set_settings(monkeypatch, PREFIX, settings)
    return CommandHandler()


def read_pids(path: Path) -> list[int] | None:
    text = path.read_text().strip() if path.exists() else ""
    return [int(pid) for pid in text.split()] if text else None


async def wait_for_pids(path: Path) -> list[int]:
    """The pids the test program wrote to ``path``, once it has written them."""
    async with asyncio.timeout(10):
        while (pids := read_pids(path)) is None:
            await asyncio.sleep(0.02)
    return pids


ECHO_CONTEXT = """
    import json, os, sys
    document = json.load(sys.stdin)
    print("starting work")
    env = {k: v for k, v in os.environ.items() if k.startswith("CALLBACK_") and not k.startswith("CALLBACK_WORKER_")}
    print(json.dumps({"document": document, "env": env}))
"""


async def test_stdin_and_environment_carry_the_context_and_the_last_line_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = python(monkeypatch, ECHO_CONTEXT)
    arguments: dict[str, JSONValue] = {"handler": "command", "n": 5, "flag": True, "s": "text", "my-arg.x": [1, "a"]}
    outputs = await handler(context(arguments, attempt=2))
    document = json.loads(str(outputs["document"]))
    env = json.loads(str(outputs["env"]))
    assert document == {
        "arguments": {"n": 5, "flag": True, "s": "text", "my-arg.x": [1, "a"]},
        "pipelineName": "p",
        "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        "executionId": "e1",
        "attempt": 2,
    }
    assert env == {
        "CALLBACK_ARG_N": "5",
        "CALLBACK_ARG_FLAG": "true",
        "CALLBACK_ARG_S": "text",
        "CALLBACK_ARG_MY_ARG_X": '[1,"a"]',
        "CALLBACK_PIPELINE_NAME": "p",
        "CALLBACK_PIPELINE_EXECUTION_ARN": "arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        "CALLBACK_EXECUTION_ID": "e1",
        "CALLBACK_ATTEMPT": "2",
    }
    assert TOKEN not in json.dumps(outputs)


async def test_the_token_is_given_only_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = python(monkeypatch, ECHO_CONTEXT, send_token="true")
    outputs = await handler(context({"a": 1}))
    assert json.loads(str(outputs["document"]))["token"] == TOKEN
    assert json.loads(str(outputs["env"]))["CALLBACK_TOKEN"] == TOKEN


async def test_a_whole_stdout_json_object_answers_typed_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    script = """
        import json
        print(json.dumps({"model": "s3://m", "epochs": 10, "ok": True, "loss": 0.5, "tags": ["a"], "none": None},
                         indent=2))
    """
    outputs = await python(monkeypatch, script)(context())
    assert outputs == {"model": "s3://m", "epochs": 10, "ok": True, "loss": 0.5, "tags": '["a"]', "none": "null"}


async def test_empty_stdout_means_no_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await python(monkeypatch, "import sys; sys.stdout.write('  \\n')")(context()) == {}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("print('done, no json')", "is not JSON"),
        ("print('[1, 2]')", "JSON list, not an object"),
        ("print('{\"a\": 1}'); print('trailing words')", "is not JSON"),
    ],
)
async def test_stdout_without_a_final_json_object_fails_saying_so(
    monkeypatch: pytest.MonkeyPatch, script: str, expected: str
) -> None:
    with pytest.raises(Fail, match=expected):
        await python(monkeypatch, script)(context())


async def test_non_zero_exit_fails_with_the_code_and_the_end_of_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    script = """
        import sys
        sys.stderr.write("x" * 20000 + "\\nTraceback: the real cause is here\\n")
        sys.exit(3)
    """
    with pytest.raises(Fail) as caught:
        await python(monkeypatch, script)(context())
    reason = caught.value.reason
    assert "exited with code 3" in reason
    assert reason.endswith("the real cause is here")
    assert len(failure(reason).reason) <= 256


async def test_a_signal_death_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(Fail, match=r"killed by signal 9 \(stderr empty\)"):
        await python(monkeypatch, script)(context())


async def test_more_stdout_than_allowed_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import sys; sys.stdout.write('y' * 5000)"
    with pytest.raises(Fail, match="more than 1024 bytes"):
        await python(monkeypatch, script, max_output="1024")(context())


async def test_a_program_that_cannot_start_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}ARGV", '["/nonexistent/program", "--flag"]')
    with pytest.raises(Fail, match="'/nonexistent/program' could not be started: No such file or directory"):
        await CommandHandler()(context())


async def test_a_nul_byte_in_an_argument_fails_instead_of_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = python(monkeypatch, "print('{}')")
    with pytest.raises(Fail, match="could not be started"):
        await handler(context({"bad": "a\x00b"}))


async def test_arguments_that_map_to_one_variable_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = python(monkeypatch, "print('{}')")
    with pytest.raises(Fail, match=r"'a-b' and 'a_b' both become the variable CALLBACK_ARG_A_B"):
        await handler(context({"a-b": 1, "a_b": 2}))


def test_argument_names_are_sanitised() -> None:
    assert argument_env_name("inputData") == "CALLBACK_ARG_INPUTDATA"
    assert argument_env_name("a.b-c d/é") == "CALLBACK_ARG_A_B_C_D__"


async def test_step_args_are_appended_after_a_separator_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import json, sys; print(json.dumps({'argv': json.dumps(sys.argv[1:])}))"
    arguments: dict[str, JSONValue] = {"command_args": ["--epochs", "3"]}
    assert await python(monkeypatch, script)(context(arguments)) == {"argv": "[]"}
    allowed = python(monkeypatch, script, allow_args="true")
    assert await allowed(context(arguments)) == {"argv": '["--", "--epochs", "3"]'}
    with pytest.raises(Fail, match="'command_args' must be a list of strings"):
        await allowed(context({"command_args": "--epochs 3"}))


async def test_the_working_directory_setting_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = "import json, os; print(json.dumps({'cwd': os.getcwd()}))"
    outputs = await python(monkeypatch, script, cwd=str(tmp_path))(context())
    assert outputs == {"cwd": str(tmp_path)}


GRANDCHILD = """
    import os, subprocess, sys, time
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", stubborn])
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
"""


def grandchild_handler(monkeypatch: pytest.MonkeyPatch, pids: Path, **settings: str) -> CommandHandler:
    argv = [sys.executable, "-c", textwrap.dedent(GRANDCHILD), str(pids)]
    monkeypatch.setenv(f"{PREFIX}ARGV", json.dumps(argv))
    set_settings(monkeypatch, PREFIX, settings)
    return CommandHandler()


async def test_timeout_kills_the_whole_group_and_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    handler = grandchild_handler(monkeypatch, pids, timeout="1", kill_grace="0.2")
    with pytest.raises(Fail, match=r"ran longer than 1 s \(CALLBACK_WORKER_COMMAND_TIMEOUT\) and was killed"):
        await handler(context())
    leader, child = (int(pid) for pid in pids.read_text().split())
    assert not alive(leader)
    await asyncio.sleep(0.1)  # the orphaned grandchild is reaped by init
    assert not alive(child)


async def test_cancelling_the_handler_kills_the_group_even_a_child_ignoring_sigterm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    handler = grandchild_handler(monkeypatch, pids, kill_grace="0.2")
    task = asyncio.create_task(handler(context()))
    leader, child = await wait_for_pids(pids)
    assert alive(child)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(leader)
    await asyncio.sleep(0.1)
    assert not alive(child)
    assert handler._running == {}


async def test_on_stop_kills_the_running_program(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    handler = grandchild_handler(monkeypatch, pids, kill_grace="0.2")
    assert isinstance(handler, StopHook)
    task = asyncio.create_task(handler(context()))
    leader, child = await wait_for_pids(pids)
    await handler.on_stop(context())
    with pytest.raises(Fail, match="killed by signal 15"):
        await task
    await asyncio.sleep(0.1)
    assert not alive(leader)
    assert not alive(child)


async def test_on_stop_without_a_running_program_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    await python(monkeypatch, "pass").on_stop(context())


async def test_unconfigured_handler_fails_naming_the_variable() -> None:
    with pytest.raises(Fail, match="set CALLBACK_WORKER_COMMAND_ARGV"):
        await CommandHandler()(context())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ARGV", "python -m x", "CALLBACK_WORKER_COMMAND_ARGV='python -m x': Value error, not valid JSON"),
        ("ARGV", "[]", "CALLBACK_WORKER_COMMAND_ARGV=[]: List should have at least 1 item"),
        ("ARGV", '["ok", 1]', "CALLBACK_WORKER_COMMAND_ARGV"),
        ("ARGV", '[""]', "CALLBACK_WORKER_COMMAND_ARGV"),
        ("TIMEOUT", "0", "CALLBACK_WORKER_COMMAND_TIMEOUT='0': Input should be greater than 0"),
        ("KILL_GRACE", "soon", "CALLBACK_WORKER_COMMAND_KILL_GRACE='soon'"),
        ("CWD", "/nonexistent/dir", "CALLBACK_WORKER_COMMAND_CWD='/nonexistent/dir': Value error, not an existing"),
        ("MAX_OUTPUT", "10", "CALLBACK_WORKER_COMMAND_MAX_OUTPUT"),
        ("PASS_ENV", "AWS_REGION,BAD-NAME", "CALLBACK_WORKER_COMMAND_PASS_ENV='AWS_REGION,BAD-NAME': Value error"),
    ],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError, match=r"^invalid setting ") as caught:
        CommandHandler()
    assert message in str(caught.value)


def test_registered_as_an_entry_point() -> None:
    assert registered_handlers()["command"] == "callback_worker.handlers.command:CommandHandler"
