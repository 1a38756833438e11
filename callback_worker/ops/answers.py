"""``succeed`` and ``fail``: answer a callback step by hand, exactly as the worker would have answered it."""

from __future__ import annotations

import argparse
from typing import Any

from callback_worker.ops.aws import guarded, sagemaker_client
from callback_worker.ops.errors import ExitCode, NotFoundError, UsageError
from callback_worker.ops.inputs import check_execution_arn, check_token, failure_outcome, parse_pairs, success_outcome
from callback_worker.ops.reads import execution_steps
from callback_worker.ops.tables import emit
from callback_worker.ops.views import answer_json, answer_text


@guarded
def succeed(args: argparse.Namespace) -> int:
    """``succeed TOKEN [--output NAME=VALUE]...``."""
    target = step_target(args)
    outcome = success_outcome(parse_pairs(args.outputs or [], "--output"))
    client = sagemaker_client()
    token = resolve_token(target, client)
    response = client.send_pipeline_execution_step_success(**outcome.request(token))
    _show("Success", token, response.get("PipelineExecutionArn"), json=args.json)
    return ExitCode.OK


@guarded
def fail(args: argparse.Namespace) -> int:
    """``fail TOKEN --reason TEXT``."""
    target = step_target(args)
    outcome = failure_outcome(args.reason)
    client = sagemaker_client()
    token = resolve_token(target, client)
    response = client.send_pipeline_execution_step_failure(**outcome.request(token))
    _show("Failure", token, response.get("PipelineExecutionArn"), json=args.json)
    return ExitCode.OK


def step_target(args: argparse.Namespace) -> str | tuple[str, str]:
    """A checked TOKEN, or a checked (execution ARN, step name) to look the token up by; nothing sent yet."""
    by_step = args.execution_arn is not None or args.step is not None
    if args.token is not None:
        if by_step:
            raise UsageError("give either TOKEN or --execution-arn with --step, not both")
        return check_token(args.token)
    if args.execution_arn is None or args.step is None:
        raise UsageError("give TOKEN, or --execution-arn ARN with --step NAME")
    return check_execution_arn(args.execution_arn), args.step


def resolve_token(target: str | tuple[str, str], client: Any) -> str:
    """The token of ``target``: itself, or the callback token of that step (looked up, never printed)."""
    if isinstance(target, str):
        return target
    arn, name = target
    for step in execution_steps(client, arn):
        token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
        if step.get("StepName") == name and token:
            return str(token)
    raise NotFoundError(f"execution {arn} has no callback step named {name!r}")


def _show(outcome: str, token: str, execution_arn: str | None, *, json: bool) -> None:
    emit(answer_json(outcome, token, execution_arn) if json else answer_text(outcome, token, execution_arn))
