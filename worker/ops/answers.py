"""``succeed`` and ``fail``: answer a callback step by hand, exactly as the worker would have answered it."""

from __future__ import annotations

import argparse

from worker.ops import views
from worker.ops.aws import guarded, sagemaker_client
from worker.ops.errors import ExitCode
from worker.ops.inputs import check_token, failure_outcome, parse_pairs, success_outcome
from worker.ops.tables import emit


@guarded
def succeed(args: argparse.Namespace) -> int:
    """``succeed TOKEN [--output NAME=VALUE]...``."""
    token = check_token(args.token)
    outcome = success_outcome(parse_pairs(args.outputs or [], "--output"))
    response = sagemaker_client().send_pipeline_execution_step_success(**outcome.request(token))
    _show("Success", token, response.get("PipelineExecutionArn"), json=args.json)
    return ExitCode.OK


@guarded
def fail(args: argparse.Namespace) -> int:
    """``fail TOKEN --reason TEXT``."""
    token = check_token(args.token)
    outcome = failure_outcome(args.reason)
    response = sagemaker_client().send_pipeline_execution_step_failure(**outcome.request(token))
    _show("Failure", token, response.get("PipelineExecutionArn"), json=args.json)
    return ExitCode.OK


def _show(outcome: str, token: str, execution_arn: str | None, *, json: bool) -> None:
    emit(views.answer_json(outcome, token, execution_arn) if json else views.answer_text(outcome, token, execution_arn))
