"""Scenario 6: no whole token in the logs; no handler passes pipeline arguments through a shell.

The token check runs on every scenario of this tier (``fleet.check_logs`` on every replica's stderr against every
token the emulator issued); here: one case those runs cannot reach — a body whose JSON is broken but that carries a
real token in its first bytes — then the static and behavioural shell checks of ``handlers/``.
"""

from __future__ import annotations

import ast
import json
import signal
import sys
from contextlib import closing
from pathlib import Path

import pytest

from callback_worker.handlers.command import CommandHandler
from callback_worker.offline import CLOSED_ENDPOINT
from callback_worker.worker.handler import CallbackContext, JSONValue
from tests.reliability.conftest import Recorder
from tests.reliability.queues import REPO, SqsBackend, make_queue, wait_for
from tests.reliability.replicas import ReplicaSet, WorkerLogs, worker_env
from tests.reliability.scale import current_scale

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

HANDLERS = REPO / "handlers"
#: Functions that run a command line through a shell whatever their arguments.
SHELL_FUNCTIONS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
    ("pty", "spawn"),
}
SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "/bin/sh", "/bin/bash", "/usr/bin/env", "cmd", "cmd.exe", "powershell"}
TOKEN = "Tok4Leak99"
OTHER_TOKEN = "Tok4Leak00"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"


def shell_uses(source: str, filename: str) -> list[str]:
    """Every place in ``source`` that runs something through a shell."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            found += _shell_call(node, filename)
        elif isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if _constant(first) in SHELLS and _constant(second) in ("-c", "/c", "-Command"):
                found.append(f"{filename}:{node.lineno}: a shell command line {_constant(first)!r} -c")
    return found


def _shell_call(node: ast.Call, filename: str) -> list[str]:
    found: list[str] = []
    for keyword in node.keywords:
        if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
            found.append(f"{filename}:{node.lineno}: shell={ast.unparse(keyword.value)}")
    function = node.func
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        if (function.value.id, function.attr) in SHELL_FUNCTIONS:
            found.append(f"{filename}:{node.lineno}: {function.value.id}.{function.attr}()")
    elif isinstance(function, ast.Name) and any(function.id == name for _, name in SHELL_FUNCTIONS):
        found.append(f"{filename}:{node.lineno}: {function.id}() (imported by name)")
    return found


def _constant(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else None


@pytest.mark.parametrize(
    "snippet",
    [
        "import subprocess\nsubprocess.run(cmd, shell=True)",
        "import subprocess\nsubprocess.Popen(cmd, shell=flag)",
        "import os\nos.system('ls ' + name)",
        "import os\nos.popen(name)",
        "import asyncio\nasyncio.create_subprocess_shell(line)",
        "from asyncio import create_subprocess_shell\ncreate_subprocess_shell(line)",
        "import subprocess\nsubprocess.getoutput(line)",
        "argv = ['sh', '-c', line]",
        "argv = ('/bin/bash', '-c', line)",
    ],
)
def test_the_shell_detector_finds_each_kind_of_shell_use(snippet: str) -> None:
    assert shell_uses(snippet, "example.py"), "the static check would miss this"


def test_no_handler_module_runs_anything_through_a_shell(record: Recorder) -> None:
    modules = sorted(HANDLERS.glob("**/*.py"))
    assert len(modules) > 5, "the handlers package was not found"
    found = [use for module in modules for use in shell_uses(module.read_text(encoding="utf-8"), module.name)]
    record(modules_checked=len(modules), shell_uses=len(found))
    assert found == []


INJECTIONS = ["$(touch {})", "`touch {}`", "; touch {}", "| touch {}", "&& touch {}", "\n touch {}"]
PRINT_ARGV = (
    "import json, os, sys; print(json.dumps({'argv': json.dumps(sys.argv[1:]), 'x': os.environ['CALLBACK_ARG_X']}))"
)


async def test_command_handler_arguments_are_never_shell_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: Recorder
) -> None:
    traps = [tmp_path / f"pwned-{index}" for index in range(len(INJECTIONS) + 1)]
    command_args: list[JSONValue] = [pattern.format(trap) for pattern, trap in zip(INJECTIONS, traps, strict=False)]
    for name in ("CALLBACK_WORKER_COMMAND_ARGV", "CALLBACK_WORKER_COMMAND_ALLOW_ARGS", "CALLBACK_WORKER_COMMAND_CWD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLBACK_WORKER_COMMAND_ARGV", json.dumps([sys.executable, "-c", PRINT_ARGV]))
    monkeypatch.setenv("CALLBACK_WORKER_COMMAND_ALLOW_ARGS", "true")
    monkeypatch.setenv("CALLBACK_WORKER_COMMAND_CWD", str(tmp_path))
    context = CallbackContext(
        token=TOKEN,
        pipeline_execution_arn=ARN,
        pipeline_name="p",
        execution_id="abcdef123456",
        arguments={"command_args": command_args, "x": f"$(touch {traps[-1]})"},
        handler_name="command",
        message_id="m-1",
    )
    outputs = await CommandHandler()(context)
    record(injections=len(command_args) + 1, executed=sum(trap.exists() for trap in traps))
    assert [trap for trap in traps if trap.exists()] == [], "a shell ran an argument"
    # Verbatim, after the "--" that ends the command's own options.
    assert json.loads(str(outputs["argv"])) == ["--", *command_args], "arguments must reach the program verbatim"
    assert outputs["x"] == f"$(touch {traps[-1]})"


def test_a_broken_body_with_a_real_token_does_not_log_it_whole(
    moto_server: str, tmp_path: Path, record: Recorder
) -> None:
    """Regression (fixed in bb9409f): the preview of a body without a usable token was logged unmasked.

    The body names two tokens, so that none is usable: a broken body naming exactly one is answered with a Failure
    (tests/security/test_deep_nesting.py).
    """
    backend = SqsBackend("moto", moto_server)
    document = {"token": TOKEN, "pipelineExecutionArn": ARN, "arguments": {"token": OTHER_TOKEN}}
    body = json.dumps(document)[:-1]  # one brace short
    with closing(backend.client()) as sqs:
        queue_url, _ = make_queue(sqs, "leak", max_receive_count=1, visibility_timeout=30)
        env = worker_env(
            queue_url=queue_url,
            sqs_endpoint=backend.endpoint,
            sagemaker_endpoint=CLOSED_ENDPOINT,
            # No SageMaker answers here: tokens unverified, or start-up would stop on the unreachable endpoint.
            settings={"handler": "echo", "wait_time": "1", "verify_tokens": "false"},
        )
        with ReplicaSet(1, env, tmp_path / "logs") as replicas:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
            log = replicas[0].incarnations[0].log_path
            wait_for(lambda: "malformed message without a usable token" in log.read_text(), timeout=60, what="it")
            assert replicas[0].stop(signal.SIGTERM) == 0
    logs = WorkerLogs.read(replicas.log_paths())
    record(leaked=logs.leaked_tokens([TOKEN, OTHER_TOKEN]))
    assert logs.leaked_tokens([TOKEN, OTHER_TOKEN]) == [], "a token appears whole in the log"
