"""callback_worker/ops/commands.py and aws.py: the subcommands' arguments, the error fence and its exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError

import callback_worker.cli
from callback_worker.ops import ExitCode, add_commands, main
from callback_worker.ops.answers import StepTarget, resolve_token
from callback_worker.ops.aws import guarded, sagemaker_client, sqs_client
from callback_worker.ops.commands import EXIT_CODES_HELP
from callback_worker.ops.errors import NotFoundError, OperatorError, UsageError

TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/7pinimwddh3a"


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="callback-worker")
    add_commands(built.add_subparsers(required=True, metavar="COMMAND"))
    return built


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["describe", ARN], {"execution_arn": ARN, "json": False}),
        (["steps", "--json", ARN], {"execution_arn": ARN, "json": True}),
        (["pending"], {"pipelines": None, "json": False}),
        (["pending", "--pipeline", "a", "--pipeline", "b"], {"pipelines": ["a", "b"]}),
        (["succeed", TOKEN], {"token": TOKEN, "outputs": None}),
        (["succeed", TOKEN, "--output", "a=1", "--output", "b=2", "--json"], {"outputs": ["a=1", "b=2"], "json": True}),
        (["fail", TOKEN, "--reason", "no"], {"token": TOKEN, "reason": "no"}),
        (
            ["send-test-message", "--queue-url", "http://q", "--argument", "n=5", "--stopping"],
            {"queue_url": "http://q", "token": None, "execution_arn": None, "arguments": ["n=5"], "stopping": True},
        ),
    ],
)
def test_arguments(argv: list[str], expected: dict[str, object]) -> None:
    args = parser().parse_args(argv)
    assert callable(args.command)
    for key, value in expected.items():
        assert getattr(args, key) == value, key


@pytest.mark.parametrize(
    "argv",
    [["fail", TOKEN], ["describe"], ["send-test-message"], ["pending", "extra"], ["succeed", TOKEN, "x"]],
)
def test_missing_or_extra_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(argv)
    assert exited.value.code == ExitCode.USAGE
    assert "error:" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["succeed", "--help"])
    out = capsys.readouterr().out
    assert EXIT_CODES_HELP in out
    assert "--output NAME=VALUE" in out


def fake(exc: BaseException) -> argparse.Namespace:
    def command(_: argparse.Namespace) -> int:
        raise exc

    return argparse.Namespace(command=guarded(command), token=TOKEN)


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendPipelineExecutionStepSuccess")


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (
            client_error("ConflictException", f"Step 'A' is already Succeeded (token {TOKEN})."),
            ExitCode.CONFLICT,
            "ConflictException: the step already has an outcome; nothing changed (Step 'A' is already Succeeded "
            "(token 26v*******).)",
        ),
        (
            client_error("ResourceNotFound", f"No step has the callback token '{TOKEN}'."),
            ExitCode.NOT_FOUND,
            "ResourceNotFound: No step has the callback token '26v*******'.",
        ),
        (client_error("ValidationException", "bad"), ExitCode.USAGE, "ValidationException: bad"),
        (client_error("AccessDeniedException", "no"), ExitCode.ERROR, "AccessDeniedException: no"),
        (client_error("ThrottlingException", ""), ExitCode.ERROR, "ThrottlingException: An error occurred"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"),
            ExitCode.ERROR,
            'EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:9/"',
        ),
        (NoRegionError(), ExitCode.ERROR, "NoRegionError: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)"),
        (UsageError(f"bad {TOKEN}"), ExitCode.USAGE, "bad 26v*******"),
        (OperatorError("other"), ExitCode.ERROR, "other"),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted"),
    ],
)
def test_errors_become_one_masked_line_and_an_exit_code(
    exc: BaseException, code: ExitCode, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = fake(exc)
    assert args.command(args) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"callback-worker: {line}")
    assert captured.err.count("\n") == 1
    assert TOKEN not in captured.err


@pytest.mark.parametrize("factory", [sagemaker_client, sqs_client])
def test_clients_honour_aws_region_as_the_worker_does(
    factory: Callable[[], BaseClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # botocore itself reads only AWS_DEFAULT_REGION
    client = factory()
    assert client.meta.region_name == "eu-west-1"
    client.close()


def test_a_bug_is_not_hidden() -> None:
    args = fake(ZeroDivisionError("bug"))
    with pytest.raises(ZeroDivisionError):
        args.command(args)


def no_client() -> object:
    raise AssertionError("nothing may be sent")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["succeed", "26vcYbeW!Z", "--output", "a=1"], "a callback token is 10 letters and digits"),
        (["succeed", TOKEN, "--output", "a"], "--output 'a' is not NAME=VALUE"),
        (["succeed", TOKEN, "--output", "a=" + "v" * 1025], "value is 1025 characters"),
        (["fail", TOKEN, "--reason", "r" * 257], "--reason is 257 characters"),
        (["fail", "short", "--reason", "r"], "it has 5 characters"),
        (["succeed"], "give TOKEN, or --execution-arn ARN with --step NAME"),
        (["succeed", "--execution-arn", "nope", "--step", "A"], "'nope' is not a pipeline execution ARN"),
        (["describe", "nope"], "'nope' is not a pipeline execution ARN"),
        (["steps", "nope"], "'nope' is not a pipeline execution ARN"),
        (["send-test-message", "--queue-url", "http://q", "--token", "x"], "it has 1 characters"),
        (["send-test-message", "--queue-url", "http://q", "--execution-arn", "nope"], "is not a pipeline execution"),
        (["send-test-message", "--queue-url", "http://q", "--argument", "=1"], "--argument '=1' has no name"),
    ],
)
def test_refused_input_sends_nothing_and_exits_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for factory in ("answers.sagemaker_client", "reads.sagemaker_client", "testmessage.sqs_client"):
        monkeypatch.setattr(f"callback_worker.ops.{factory}", no_client)
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_parsing_the_commands_imports_no_aws_sdk() -> None:
    code = (
        "import sys, callback_worker.ops; callback_worker.ops.main; "
        "print(sorted(m for m in sys.modules if m.startswith('bo')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def operator_commands_wired() -> bool:
    return any(
        isinstance(action, argparse._SubParsersAction) and "succeed" in action.choices
        for action in callback_worker.cli.build_parser()._actions
    )


@pytest.mark.skipif(
    not operator_commands_wired(), reason="callback_worker.cli.build_parser() does not call add_commands yet"
)
def test_the_console_script_routes_the_operator_commands() -> None:
    args = callback_worker.cli.build_parser().parse_args(["succeed", TOKEN, "--output", "a=1"])
    assert args.command.__module__ == "callback_worker.ops.commands"
    assert args.command.__name__ == "_succeed"
    for command in ("run", "handlers", "emulate", "demo", "describe", "steps", "pending", "fail", "send-test-message"):
        assert command in callback_worker.cli.build_parser().format_help()


class ListedSteps:
    """A SageMaker client as far as ``resolve_token`` reads it: one page of ListPipelineExecutionSteps, parsed as
    botocore parses it (a JSON ``null`` stays ``None``)."""

    def __init__(self, steps: list[dict[str, object]]) -> None:
        self.steps = steps

    def get_paginator(self, operation: str) -> ListedSteps:
        assert operation == "list_pipeline_execution_steps"
        return self

    def paginate(self, **_: object) -> list[dict[str, object]]:
        return [{"PipelineExecutionSteps": self.steps}]


@pytest.mark.parametrize("metadata", [None, {"Callback": None}, {}])
def test_a_step_listed_without_callback_metadata_is_passed_over(metadata: object) -> None:
    waiting: dict[str, object] = {
        "StepName": "Gate",
        "StepStatus": "Executing",
        "Metadata": {"Callback": {"CallbackToken": TOKEN}},
    }
    client = ListedSteps([{"StepName": "Gate", "StepStatus": "Executing", "Metadata": metadata}, waiting])
    assert resolve_token(StepTarget(execution_arn=ARN, step="Gate"), client) == TOKEN
    with pytest.raises(NotFoundError, match="lists no callback step named 'Gate'"):
        resolve_token(StepTarget(execution_arn=ARN, step="Gate"), ListedSteps([client.steps[0]]))
