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
  2  usage: bad arguments or input (nothing sent), a missing AWS profile, or ValidationException
  3  not found (ResourceNotFound, no redrive policy), or dlq answer kept a message
  4  already answered (ConflictException)
  130  interrupted (Ctrl-C)"""

EXECUTION_HELP = "the execution's ARN, or its id where one execution of the account and region has it"
DLQ_HELP = """The messages of the dead-letter queue named by the source queue's redrive policy.

  list     the messages: execution, step, receive count, age, why (reads them for a few seconds, then releases them)
  answer   answer their steps (Failure with --reason, or --succeed), then delete them; repeatable safely
  redrive  move them back to the source queue (StartMessageMoveTask where SQS offers it)"""

SubParsers = argparse._SubParsersAction  # argparse names no public type for it


def main(argv: Sequence[str] | None = None) -> int:
    """Run one operator command (``python -m callback_worker.ops COMMAND ...``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="callback-worker", description="Operator commands of callback-worker.")
    add_commands(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = args.command(args)
    return code


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``describe``, ``steps``, ``pending``, ``succeed``, ``fail``, ``send-test-message`` and ``dlq``."""
    describe = _command(subparsers, "describe", "show an execution's status, failure reason, experiment and times")
    describe.add_argument("execution_arn", metavar="EXECUTION", help=EXECUTION_HELP)
    describe.set_defaults(command=_describe)

    steps = _command(subparsers, "steps", "list an execution's steps: status, queue, token (partly), outputs")
    steps.add_argument("execution_arn", metavar="EXECUTION", help=EXECUTION_HELP)
    steps.set_defaults(command=_steps)

    pending = _command(subparsers, "pending", "list callback steps waiting for an answer in running executions")
    pending.add_argument(
        "--pipeline", dest="pipelines", action="append", metavar="NAME", help="only this pipeline (repeatable)"
    )
    pending.add_argument(
        "--older-than",
        metavar="DURATION",
        help="only steps started longer ago than this: 90m, 2h, 3d, 1h30m (units s, m, h, d, w)",
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

    _add_send_test_message(subparsers)
    _add_dlq(subparsers)


def _add_send_test_message(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    """``send-test-message``: on the emulator, a one-step pipeline execution sends it (``--bare``: the message)."""
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
    send.add_argument(
        "--bare",
        action="store_true",
        help="send the message itself even when the SageMaker endpoint is the local emulator (which otherwise "
        "starts a one-step pipeline execution that sends it, with a real token)",
    )
    send.set_defaults(command=_send_test_message)


def _add_dlq(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    """``dlq list|answer|redrive``: the messages of the source queue's dead-letter queue."""
    dlq = subparsers.add_parser(
        "dlq",
        help="list, answer or redrive the messages of the queue's dead-letter queue",
        description=DLQ_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = dlq.add_subparsers(required=True, metavar="ACTION")

    listing = _command(commands, "list", "list the dead-lettered callback messages: execution, step, receives, age")
    _queue_option(listing)
    listing.set_defaults(command=_dlq_list)

    answer = _command(commands, "answer", "answer the steps of dead-lettered messages, then delete the messages")
    _queue_option(answer)
    answer.add_argument("--all", action="store_true", help="every message of the dead-letter queue")
    answer.add_argument(
        "--execution-arn",
        dest="execution_arns",
        action="append",
        metavar="ARN",
        help="the messages of this execution (repeatable)",
    )
    answer.add_argument(
        "--message-id",
        dest="message_ids",
        action="append",
        metavar="ID",
        help="this message, as dlq list shows it (repeatable)",
    )
    answer.add_argument("--succeed", action="store_true", help="answer with a Success (default: a Failure)")
    answer.add_argument(
        "--output", dest="outputs", action="append", metavar="NAME=VALUE", help="with --succeed (repeatable)"
    )
    answer.add_argument("--reason", metavar="TEXT", help="the Failure's reason (1-256 characters)")
    answer.add_argument("--dry-run", action="store_true", help="show what would be answered; send nothing")
    answer.set_defaults(command=_dlq_answer)

    redrive = _command(commands, "redrive", "move the dead-lettered messages back to the source queue")
    _queue_option(redrive)
    redrive.add_argument("--dry-run", action="store_true", help="show how many would move, and how; move nothing")
    redrive.set_defaults(command=_dlq_redrive)


def _queue_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue-url",
        metavar="URL",
        help="the worker's queue, whose redrive policy names the dead-letter queue "
        "(default: $CALLBACK_WORKER_QUEUE_URL)",
    )


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
    from callback_worker.ops.reads import describe  # noqa: PLC0415

    return describe(args)


def _steps(args: argparse.Namespace) -> int:
    from callback_worker.ops.reads import steps  # noqa: PLC0415

    return steps(args)


def _pending(args: argparse.Namespace) -> int:
    from callback_worker.ops.reads import pending  # noqa: PLC0415

    return pending(args)


def _step_target(parser: argparse.ArgumentParser) -> None:
    """TOKEN, or --execution-arn with --step to look the token up without ever printing it; TOKEN with
    --execution-arn answers only if SageMaker lists the token under that execution."""
    parser.add_argument("token", metavar="TOKEN", nargs="?", help="the step's callback token")
    parser.add_argument(
        "--execution-arn",
        metavar="ARN",
        help="the step's execution: with --step instead of TOKEN, or with TOKEN to answer it only if SageMaker lists "
        "it there; either way only a step still waiting is answered",
    )
    parser.add_argument("--step", metavar="NAME", help="with --execution-arn: the step's name")


def _succeed(args: argparse.Namespace) -> int:
    from callback_worker.ops.answers import succeed  # noqa: PLC0415

    return succeed(args)


def _fail(args: argparse.Namespace) -> int:
    from callback_worker.ops.answers import fail  # noqa: PLC0415

    return fail(args)


def _send_test_message(args: argparse.Namespace) -> int:
    from callback_worker.ops.testmessage import send_test_message  # noqa: PLC0415

    return send_test_message(args)


def _dlq_list(args: argparse.Namespace) -> int:
    from callback_worker.ops.dlq import list_messages  # noqa: PLC0415

    return list_messages(args)


def _dlq_answer(args: argparse.Namespace) -> int:
    from callback_worker.ops.dlq import answer  # noqa: PLC0415

    return answer(args)


def _dlq_redrive(args: argparse.Namespace) -> int:
    from callback_worker.ops.redrive import redrive  # noqa: PLC0415

    return redrive(args)
