"""The ``command`` handler: runs a configured program for the step and answers with what it prints.

Settings, arguments, outputs and stop behaviour are documented on :class:`CommandHandler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from callback_worker.config.settings import decode_json
from callback_worker.handlers._context import argument_environment, context_document, object_outputs, step_arguments
from callback_worker.handlers._settings import HandlerSettings, load_settings, split_commas
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, OutputValue
from callback_worker.worker.tracecontext import trace_headers

ARGS_ARGUMENT = "command_args"
#: Bytes of stderr kept (its end) for the failure reason.
STDERR_TAIL = 4096
#: Characters of stderr's end shown in a failure reason (the whole reason is cut at 256).
STDERR_SHOWN = 180
#: Variables of the worker's environment every program gets (those that are set).
BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")
#: What separates ``ARGV`` from the step's ``command_args``.
ARGS_SEPARATOR = "--"
_CHUNK = 65536
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CommandSettings(HandlerSettings):
    """Settings of the ``command`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_COMMAND_")

    argv: Annotated[
        list[Annotated[str, Field(min_length=1)]] | None,
        Field(default=None, min_length=1, max_length=1000, description="The program and its arguments (JSON list)."),
    ]
    cwd: Annotated[str | None, Field(default=None, min_length=1, description="Working directory of the program.")]
    timeout: Annotated[
        float, Field(default=3600.0, gt=0, le=43_200, description="Seconds the program may run before it is killed.")
    ]
    kill_grace: Annotated[
        float, Field(default=5.0, ge=0, le=60, description="Seconds between SIGTERM and SIGKILL when stopping.")
    ]
    allow_args: Annotated[
        bool, Field(default=False, description=f"Append the step argument '{ARGS_ARGUMENT}' (list of strings).")
    ]
    send_token: Annotated[bool, Field(default=False, description="Give the program the callback token.")]
    max_output: Annotated[
        int, Field(default=1_048_576, ge=1024, le=67_108_864, description="Bytes of stdout accepted.")
    ]
    pass_env: Annotated[
        tuple[str, ...],
        Field(default=(), max_length=1000, description="Variables of the worker's environment the program also gets."),
    ]

    @field_validator("argv", mode="before")
    @classmethod
    def _decode_argv(cls, value: object) -> object:
        return decode_json(value)

    @field_validator("pass_env", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("pass_env")
    @classmethod
    def _variable_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a variable name")
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError("not an existing directory")
        return value


class CommandHandler:
    """The ``command`` handler: runs a configured program for the step and answers with what it prints.

    Settings (environment, prefix ``CALLBACK_WORKER_COMMAND_``):

    - ``ARGV`` (unset by default): The program and its arguments as a JSON list of strings, e.g. ``["python", "-m",
      "train"]``. Run directly, never through a shell; a bare program name is looked up on ``PATH``.
    - ``CWD`` (unset by default): Working directory (must exist); unset: the worker's.
    - ``TIMEOUT`` (default ``3600``): Seconds the program may run (0 < t ≤ 43,200) before it is killed and the step
      failed.
    - ``KILL_GRACE`` (default ``5``): Seconds between SIGTERM and SIGKILL when the program is stopped (0 to 60).
    - ``ALLOW_ARGS`` (default ``false``): Append the step argument ``command_args`` (a list of strings) to ``ARGV``,
      after a ``--`` separator (``ARGV... -- ARGS...``, also when the list is empty), so that a step's arguments are
      never read as options the program was not configured with; the argument is then not passed on as a variable or
      on stdin. The program must accept ``--`` (most option parsers do).
    - ``SEND_TOKEN`` (default ``false``): Give the program the callback token (``CALLBACK_TOKEN``, and ``token`` on
      stdin).
    - ``MAX_OUTPUT`` (default ``1048576``): Bytes of stdout accepted (1 KiB to 64 MiB); more fails the step.
    - ``PASS_ENV`` (default empty): Comma-separated names of variables of the worker's environment the program gets
      besides the minimal set below, e.g. ``AWS_REGION,HTTPS_PROXY``; names that are not set are skipped.

    Unset ``ARGV``: each step routed here fails naming the variable.

    What the program gets:

    - its environment: not the worker's — which holds AWS credentials and other handlers' secrets — but only
      ``PATH``, ``LANG``, ``LC_ALL``, ``TZ``, ``HOME`` and ``TMPDIR`` (those the worker has) and the variables named
      by ``PASS_ENV``; plus one ``CALLBACK_ARG_<NAME>`` per step argument (the routing argument excluded) — the name
      upper-cased with every character but ``A-Z0-9_`` replaced by ``_``; strings as they are, other values as JSON
      (two arguments that give one variable name fail the step) — and ``CALLBACK_PIPELINE_NAME``,
      ``CALLBACK_PIPELINE_EXECUTION_ARN``, ``CALLBACK_EXECUTION_ID``, ``CALLBACK_ATTEMPT`` (and ``CALLBACK_TOKEN`` with
      ``SEND_TOKEN``), which win over a ``PASS_ENV`` variable of the same name;
    - on stdin, the context document as one JSON object: ``{"arguments", "pipelineName", "pipelineExecutionArn",
      "executionId", "attempt"}`` (plus ``token`` with ``SEND_TOKEN``), then end of file.

    What it answers: exit code 0 and, on stdout, either one JSON object (the whole of stdout) or any log lines followed
    by a JSON object on the last non-empty line. The object's members become the outputs (scalars as they are, lists and
    objects as compact JSON). Empty stdout means no outputs; anything else fails the step. A non-zero exit fails the
    step with the exit code and the end of stderr; so does a program that cannot be started.

    **Stopping.** The program runs in its own session and process group (``start_new_session``). When the handler's task
    is cancelled — the pipeline is stopping, or the worker shuts down past its grace period — or its ``on_stop`` runs,
    the whole group gets SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds. Processes that leave the group (``setsid``)
    are out of reach. A command killed by a worker shutdown runs again when the message is delivered again.
    """

    def __init__(self) -> None:
        self.settings = load_settings(CommandSettings)
        self._running: dict[str, asyncio.subprocess.Process] = {}

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue]:
        argv = self._argv(context)
        document = context_document(context, include_token=self.settings.send_token, exclude=self._overrides())
        stdin = json.dumps(document).encode()
        process = await self._spawn(argv, self._environment(context))
        self._running[context.token] = process
        try:
            async with asyncio.timeout(self.settings.timeout):
                stdout, stderr, _ = await asyncio.gather(
                    _read_bounded(process, self.settings.max_output),
                    _read_tail(process),
                    _feed(process, stdin),
                )
                code = await process.wait()
        except TimeoutError:
            raise Fail(
                f"command {argv[0]!r} ran longer than {self.settings.timeout:g} s "
                f"({CommandSettings.env_name('timeout')}) and was killed"
            ) from None
        finally:
            if self._running.get(context.token) is process:
                del self._running[context.token]
            await terminate_group(process, self.settings.kill_grace)
        return _answer(argv[0], code, stdout, stderr, self.settings.max_output)

    async def on_stop(self, context: CallbackContext) -> None:
        """Kill the step's process group if it still runs on this replica."""
        process = self._running.get(context.token)
        if process is not None:
            await terminate_group(process, self.settings.kill_grace)

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (ARGS_ARGUMENT,) if self.settings.allow_args else ()

    def _argv(self, context: CallbackContext) -> list[str]:
        argv = list(self.settings.require("argv"))
        extra = context.arguments.get(ARGS_ARGUMENT)
        if extra is not None and self.settings.allow_args:
            if not isinstance(extra, list) or not all(isinstance(item, str) for item in extra):
                raise Fail(f"the step argument {ARGS_ARGUMENT!r} must be a list of strings")
            argv.append(ARGS_SEPARATOR)
            argv.extend(str(item) for item in extra)
        return argv

    def _environment(self, context: CallbackContext) -> dict[str, str]:
        arguments: Mapping[str, JSONValue] = step_arguments(context, exclude=self._overrides())
        environment = inherited_environment(self.settings.pass_env)
        environment.update(argument_environment(arguments))
        environment.update(
            CALLBACK_PIPELINE_NAME=context.pipeline_name,
            CALLBACK_PIPELINE_EXECUTION_ARN=context.pipeline_execution_arn,
            CALLBACK_EXECUTION_ID=context.execution_id,
            CALLBACK_ATTEMPT=str(context.attempt),
        )
        if self.settings.send_token:
            environment["CALLBACK_TOKEN"] = context.token
        environment.update({name.upper(): value for name, value in trace_headers().items()})
        return environment

    async def _spawn(self, argv: list[str], environment: dict[str, str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                cwd=self.settings.cwd,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # not found, not executable, NUL byte in an argument or variable
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise Fail(f"command {argv[0]!r} could not be started: {reason}") from None


def inherited_environment(names: tuple[str, ...]) -> dict[str, str]:
    """The part of the worker's environment a program gets: :data:`BASE_ENVIRONMENT` and ``names``, those set."""
    return {name: os.environ[name] for name in (*BASE_ENVIRONMENT, *names) if name in os.environ}


async def terminate_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the process's group, SIGKILL after ``grace`` seconds, then reap it.

    SIGKILL goes to the group even when the leader has exited, so children it left behind go too. The final SIGKILL
    is sent even if this coroutine is cancelled while it waits.
    """
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await process.wait()
    try:
        _signal_group(process.pid, signal.SIGKILL)
    finally:
        await process.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = process.stdin
    if stdin is None:
        return
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program does not read its stdin: that is its right
    finally:
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()


async def _read_bounded(process: asyncio.subprocess.Process, limit: int) -> bytes | None:
    """All of stdout, or ``None`` once it passed ``limit`` bytes (the rest is read and dropped)."""
    assert process.stdout is not None  # noqa: S101 - created with stdout=PIPE
    chunks: list[bytes] = []
    size = 0
    while chunk := await process.stdout.read(_CHUNK):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    return b"".join(chunks) if size <= limit else None


async def _read_tail(process: asyncio.subprocess.Process) -> bytes:
    """The last ``STDERR_TAIL`` bytes of stderr."""
    assert process.stderr is not None  # noqa: S101 - created with stderr=PIPE
    tail = b""
    while chunk := await process.stderr.read(_CHUNK):
        tail = (tail + chunk)[-STDERR_TAIL:]
    return tail


def _answer(program: str, code: int, stdout: bytes | None, stderr: bytes, limit: int) -> dict[str, OutputValue]:
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = stderr.decode("utf-8", errors="replace").strip()[-STDERR_SHOWN:]
        raise Fail(f"command {program!r} {how}" + (f": {tail}" if tail else " (stderr empty)"))
    if stdout is None:
        raise Fail(f"command {program!r} printed more than {limit} bytes on stdout")
    return _parse_stdout(program, stdout)


def _parse_stdout(program: str, stdout: bytes) -> dict[str, OutputValue]:
    text = stdout.decode("utf-8", errors="replace")
    if not text.strip():
        return {}
    whole: Any = None
    with contextlib.suppress(ValueError):
        whole = json.loads(text)
    if isinstance(whole, dict):
        return object_outputs(text, "stdout")
    last = text.strip().splitlines()[-1]
    return object_outputs(last, f"the last line of command {program!r}'s stdout")
