"""An execution named by its ARN or, where that is unambiguous, by its id alone — the last part of the ARN, as the
demo, the logs and SageMaker Studio show it.

An id is looked for in the executions of every pipeline of the account and region (ListPipelines, then
ListPipelineExecutions of each, every page): one execution with that id is the one meant; none is "not found"
(exit 3); several — ids are unique only within a pipeline — is a usage error naming the pipelines (exit 2). Either
way one line. The walk costs a call per page of pipelines and of each one's executions: scripts should give the ARN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from callback_worker.ops.errors import NotFoundError, UsageError
from callback_worker.ops.inputs import check_execution_arn
from callback_worker.worker.retrying import error_code

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

#: An execution id as SageMaker makes them (12 lower-case letters and digits); anything else must be an ARN.
EXECUTION_ID = re.compile(r"[a-z0-9]{12}")
PAGE_SIZE = 100


def check_execution(named: str) -> str:
    """``named`` if it is an execution ARN or looks like an execution id (checked before anything is sent)."""
    return named if EXECUTION_ID.fullmatch(named) else check_execution_arn(named)


def resolve_execution(client: SageMakerClient, named: str) -> str:
    """The ARN of the execution ``named`` (an ARN, checked, or an id that one execution has)."""
    if not EXECUTION_ID.fullmatch(named):
        return check_execution_arn(named)
    found = [arn for arn in execution_arns(client) if arn.rsplit("/", 1)[-1] == named]
    if not found:
        raise NotFoundError(f"no pipeline execution has the id {named!r} in this account and region")
    if len(found) > 1:
        pipelines = ", ".join(sorted(arn.split(":pipeline/", 1)[-1].split("/", 1)[0] for arn in found))
        raise UsageError(f"execution id {named!r} is ambiguous (pipelines {pipelines}); give the execution's ARN")
    return found[0]


def execution_arns(client: SageMakerClient) -> Iterator[str]:
    """The ARN of every execution of every pipeline (a pipeline deleted during the walk is skipped)."""
    pipelines = client.get_paginator("list_pipelines").paginate(PaginationConfig={"PageSize": PAGE_SIZE})
    for page in pipelines:
        for pipeline in page.get("PipelineSummaries", []):
            try:
                yield from _executions_of(client, pipeline["PipelineName"])
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFound":
                    raise


def _executions_of(client: SageMakerClient, pipeline: str) -> Iterator[str]:
    pages = client.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline, PaginationConfig={"PageSize": PAGE_SIZE}
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            yield summary["PipelineExecutionArn"]
