"""``succeed`` and ``fail``: answer a callback step by hand, exactly as the worker would have answered it.

Given an execution (``--execution-arn`` with ``--step``, or with TOKEN), the command trusts SageMaker: it answers only
a callback step that ListPipelineExecutionSteps lists under that execution and that still waits (``Starting``,
``Executing`` or ``Stopping``), and sends nothing when the listing fails. A bare TOKEN is sent as given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from callback_worker.ops.aws import guarded, sagemaker_client
from callback_worker.ops.errors import ConflictError, ExitCode, NotFoundError, OperatorError, UsageError
from callback_worker.ops.inputs import check_execution_arn, check_token, failure_outcome, parse_pairs, success_outcome
from callback_worker.ops.reads import WAITING_STEP_STATUSES, execution_steps
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


@dataclass(frozen=True, slots=True)
class StepTarget:
    """The step to answer: a TOKEN, an execution and a step name, or an execution and a TOKEN it must list."""

    token: str | None = None
    execution_arn: str | None = None
    step: str | None = None


def step_target(args: argparse.Namespace) -> StepTarget:
    """A checked TOKEN, (execution ARN, step name) or (execution ARN, TOKEN); nothing sent yet."""
    arn = check_execution_arn(args.execution_arn) if args.execution_arn is not None else None
    if args.token is not None:
        if args.step is not None:
            raise UsageError("give TOKEN, or --execution-arn ARN with --step NAME, not TOKEN with --step")
        return StepTarget(token=check_token(args.token), execution_arn=arn)
    if arn is None or args.step is None:
        raise UsageError("give TOKEN, or --execution-arn ARN with --step NAME")
    return StepTarget(execution_arn=arn, step=args.step)


def resolve_token(target: StepTarget, client: Any) -> str:
    """The token to answer: a bare TOKEN as given; else the callback step's that SageMaker lists under the execution
    (by name, or by TOKEN), only while it still waits. Raises when it is not listed, finished or not looked up."""
    arn = target.execution_arn
    if arn is None:
        assert target.token is not None  # noqa: S101 - step_target gives a token or an execution
        return target.token
    what = f"callback step named {target.step!r}" if target.token is None else "callback step with this token"
    for step in listed_steps(client, arn):
        token = ((step.get("Metadata") or {}).get("Callback") or {}).get("CallbackToken")
        if not token or not _is_target(target, step.get("StepName"), token):
            continue
        status = step.get("StepStatus")
        if status not in WAITING_STEP_STATUSES:
            raise ConflictError(f"the {what} of execution {arn} already finished ({status}); nothing sent")
        return str(token)
    raise NotFoundError(f"execution {arn} lists no {what}; nothing sent")


def _is_target(target: StepTarget, name: object, token: object) -> bool:
    return token == target.token if target.token is not None else name == target.step


def listed_steps(client: Any, arn: str) -> list[dict[str, Any]]:
    """The steps SageMaker lists under ``arn``; an error that says nothing final refuses the answer."""
    try:
        return execution_steps(client, arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        if code == "ResourceNotFound":
            raise NotFoundError(f"SageMaker does not know execution {arn} ({detail}); nothing sent") from exc
        raise OperatorError(f"the steps of {arn} could not be listed ({detail}); nothing sent") from exc
    except BotoCoreError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise OperatorError(f"the steps of {arn} could not be listed ({detail}); nothing sent") from exc


def _show(outcome: str, token: str, execution_arn: str | None, *, json: bool) -> None:
    emit(answer_json(outcome, token, execution_arn) if json else answer_text(outcome, token, execution_arn))
