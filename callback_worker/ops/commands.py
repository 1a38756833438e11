"""The operator subcommands' arguments, and ``main`` for running them on their own.

Nothing here imports boto3: ``callback-worker handlers`` and ``emulate`` build the same parser and should not pay
for it. Each command imports its module when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

EXIT_CODES_HELP = """exit codes:
  0  done
  1  AWS or other error
  2  usage: bad arguments or input (nothing sent), or ValidationException
  3  not found (ResourceNotFound)
  4  already answered (ConflictException)"""

SubParsers = argparse._SubParsersAction  # argparse names no public type for it


def main(argv: Sequence[str] | None = None) -> int:
    """Run one operator command (``python -m callback_worker.ops COMMAND ...``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="callback-worker", description="Operator commands of callback-worker.")
    add_commands(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = args.command(args)
    return code


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``describe``, ``steps``, ``pending``, ``succeed``, ``fail`` and ``send-test-message``."""
    describe = _command(subparsers, "describe", "show an execution's status, failure reason, experiment and times")
    describe.add_argument("execution_arn", metavar="EXECUTION_ARN")
    describe.set_defaults(command=_describe)

    steps = _command(subparsers, "steps", "list an execution's steps: status, queue, token (partly), outputs")
    steps.add_argument("execution_arn", metavar="EXECUTION_ARN")
    steps.set_defaults(command=_steps)

    pending = _command(subparsers, "pending", "list callback steps waiting for an answer in running executions")
    pending.add_argument(
        "--pipeline", dest="pipelines", action="append", metavar="NAME", help="only this pipeline (repeatable)"
    )
    pending.set_defaults(command=_pending)

    succeed = _command(subparsers, "succeed", "answer a callback step with a Success")
    _step_target(succeed)
    succeed.add_argument(
        "--output", dest="outputs", action="append", metavar="NAME=VALUE", help="an output parameter (repeatable)"
    )
    succeed.set_defaults(command=_succeed)

    fail = _command(subparsers, "fail", "answer a callback step with a Failure")
    _step_target(fail)
    fail.add_argument("--reason", required=True, metavar="TEXT", help="the failure reason (1-256 characters)")
    fail.set_defaults(command=_fail)

    send = _command(subparsers, "send-test-message", "send a well-formed callback message to a queue, for trials")
    send.add_argument("--queue-url", required=True, metavar="URL")
    send.add_argument("--token", metavar="TOKEN", help="the callback token (default: a random one)")
    send.add_argument("--execution-arn", metavar="ARN", help="default: a made-up execution of callback-worker-test")
    send.add_argument(
        "--argument",
        dest="arguments",
        action="append",
        metavar="NAME=VALUE",
        help="a step argument, VALUE parsed as JSON when it parses, else text (repeatable)",
    )
    send.add_argument("--stopping", action="store_true", help='send "status": "Stopping" instead of "Executing"')
    send.set_defaults(command=_send_test_message)


def _command(subparsers: SubParsers[argparse.ArgumentParser], name: str, summary: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    return parser


# Each command imports its module (and so boto3) only when it runs.


def _describe(args: argparse.Namespace) -> int:
    from callback_worker.ops import reads  # noqa: PLC0415

    return reads.describe(args)


def _steps(args: argparse.Namespace) -> int:
    from callback_worker.ops import reads  # noqa: PLC0415

    return reads.steps(args)


def _pending(args: argparse.Namespace) -> int:
    from callback_worker.ops import reads  # noqa: PLC0415

    return reads.pending(args)


def _step_target(parser: argparse.ArgumentParser) -> None:
    """TOKEN, or --execution-arn with --step to look the token up without ever printing it."""
    parser.add_argument("token", metavar="TOKEN", nargs="?", help="the step's callback token")
    parser.add_argument("--execution-arn", metavar="ARN", help="instead of TOKEN: the step's execution ...")
    parser.add_argument("--step", metavar="NAME", help="... and the step's name")


def _succeed(args: argparse.Namespace) -> int:
    from callback_worker.ops import answers  # noqa: PLC0415

    return answers.succeed(args)


def _fail(args: argparse.Namespace) -> int:
    from callback_worker.ops import answers  # noqa: PLC0415

    return answers.fail(args)


def _send_test_message(args: argparse.Namespace) -> int:
    from callback_worker.ops import testmessage  # noqa: PLC0415

    return testmessage.send_test_message(args)
