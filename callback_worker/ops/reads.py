"""The read commands: ``describe``, ``steps`` and ``pending``.

Every list is read to its end through ``NextToken``. ``pending`` walks ListPipelines → ListPipelineExecutions (keeping
Executing and Stopping executions) → ListPipelineExecutionSteps (keeping callback steps still Starting, Executing or
Stopping), one call at a time, so it costs one ListPipelineExecutionSteps per running execution. ``--older-than``
keeps the steps that started longer ago than the duration (:mod:`callback_worker.ops.durations`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from callback_worker.ops.aws import guarded, sagemaker_client
from callback_worker.ops.durations import parse_duration
from callback_worker.ops.errors import ExitCode
from callback_worker.ops.lookup import check_execution, resolve_execution
from callback_worker.ops.tables import complain, emit
from callback_worker.ops.views import (
    WaitingStep,
    describe_json,
    describe_text,
    is_callback,
    pending_json,
    pending_text,
    pipeline_name,
    started,
    steps_json,
    steps_text,
)
from callback_worker.worker.retrying import error_code

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

#: The largest page the List operations return (their MaxResults maximum).
PAGE_SIZE = 100
RUNNING_EXECUTION_STATUSES = frozenset({"Executing", "Stopping"})
WAITING_STEP_STATUSES = frozenset({"Starting", "Executing", "Stopping"})
_NEVER = datetime.max.replace(tzinfo=UTC)


@guarded
def describe(args: argparse.Namespace) -> int:
    """``describe EXECUTION`` (its ARN, or an id one execution has)."""
    named = check_execution(args.execution_arn)  # nothing is sent for what is neither an ARN nor an id
    client = sagemaker_client()
    arn = resolve_execution(client, named)
    execution = dict(client.describe_pipeline_execution(PipelineExecutionArn=arn))
    emit(describe_json(execution) if args.json else describe_text(execution))
    return ExitCode.OK


@guarded
def steps(args: argparse.Namespace) -> int:
    """``steps EXECUTION`` (its ARN, or an id one execution has)."""
    named = check_execution(args.execution_arn)  # nothing is sent for what is neither an ARN nor an id
    client = sagemaker_client()
    arn = resolve_execution(client, named)
    found = execution_steps(client, arn)
    if args.json:
        emit(steps_json(found))
    elif found:
        emit(steps_text(found))
    else:
        complain(f"no step of {arn} has started")
    return ExitCode.OK


@guarded
def pending(args: argparse.Namespace) -> int:
    """``pending [--pipeline NAME]... [--older-than DURATION]``."""
    older_than = parse_duration(args.older_than) if args.older_than is not None else None
    found = waiting_steps(sagemaker_client(), args.pipelines)
    if older_than is not None:
        found = started_before(found, datetime.now(UTC) - older_than)
    if args.json:
        emit(pending_json(found))
    elif found:
        emit(pending_text(found))
    else:
        complain("no callback step is waiting" + (f" since more than {args.older_than}" if older_than else ""))
    return ExitCode.OK


def started_before(waiting: Sequence[WaitingStep], cutoff: datetime) -> list[WaitingStep]:
    """The steps of ``waiting`` that started before ``cutoff`` (a step without a start time is left out)."""
    return [item for item in waiting if (started(item.step) or _NEVER) < cutoff]


def execution_steps(client: SageMakerClient, execution_arn: str, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Every started step of an execution, oldest first."""
    paginator = client.get_paginator("list_pipeline_execution_steps")
    pages = paginator.paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending", PaginationConfig={"PageSize": page_size}
    )
    return [dict(step) for page in pages for step in page.get("PipelineExecutionSteps", [])]


def waiting_steps(
    client: SageMakerClient, pipelines: Sequence[str] | None = None, page_size: int = PAGE_SIZE
) -> list[WaitingStep]:
    """Callback steps that wait for an answer in running executions of ``pipelines`` (default: every pipeline).

    Sorted by the step's start time, oldest first: the step that has waited longest comes first. A named pipeline
    that does not exist raises ``ResourceNotFound``; one deleted while every pipeline is being walked is skipped.
    """
    waiting: list[WaitingStep] = []
    for name in pipelines or list(pipeline_names(client, page_size)):
        try:
            executions = list(running_executions(client, name, page_size))
        except ClientError as exc:
            if pipelines or error_code(exc) != "ResourceNotFound":
                raise
            continue
        for summary in executions:
            arn = summary["PipelineExecutionArn"]
            waiting += [
                WaitingStep(pipeline_name(arn) or name, arn, summary["PipelineExecutionStatus"], step)
                for step in execution_steps(client, arn, page_size)
                if is_callback(step) and step.get("StepStatus") in WAITING_STEP_STATUSES
            ]
    return sorted(waiting, key=lambda item: (started(item.step) or _NEVER, item.execution_arn))


def pipeline_names(client: SageMakerClient, page_size: int = PAGE_SIZE) -> Iterator[str]:
    """The name of every pipeline, by name."""
    pages = client.get_paginator("list_pipelines").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for summary in page.get("PipelineSummaries", []):
            yield summary["PipelineName"]


def running_executions(client: SageMakerClient, pipeline: str, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Summaries of the pipeline's Executing and Stopping executions."""
    pages = client.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            if summary.get("PipelineExecutionStatus") in RUNNING_EXECUTION_STATUSES:
                yield dict(summary)
