"""Response shapes: the emulator's state as the service model's output structures.

Members are present only when they have a value, as in the service's answers; timestamps are epoch seconds.
"""

from __future__ import annotations

from typing import Any

from callback_worker.emulator.state import Execution, Pipeline, PipelineVersion, StepRun
from callback_worker.emulator.values import to_text


def _compact(members: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in members.items() if value is not None}


def _parallelism(limit: int | None) -> dict[str, int] | None:
    return None if limit is None else {"MaxParallelExecutionSteps": limit}


def user_context(account: str) -> dict[str, Any]:
    """``CreatedBy``/``LastModifiedBy``: the emulator checks no signature, so every caller is the account."""
    return {"IamIdentity": {"Arn": f"arn:aws:iam::{account}:root", "PrincipalId": account}}


def describe_pipeline(pipeline: Pipeline, version: PipelineVersion, account: str) -> dict[str, Any]:
    """``DescribePipelineResponse`` (of ``version``)."""
    return _compact(
        {
            "PipelineArn": pipeline.arn,
            "PipelineName": pipeline.name,
            "PipelineDisplayName": pipeline.display_name,
            "PipelineDefinition": version.definition,
            "PipelineVersionDisplayName": version.display_name,
            "PipelineVersionDescription": version.description,
            "CreatedBy": user_context(account),
            "LastModifiedBy": user_context(account),
            "PipelineDescription": pipeline.description,
            "RoleArn": pipeline.role_arn,
            "PipelineStatus": "Active",
            "CreationTime": pipeline.creation_time,
            "LastModifiedTime": pipeline.last_modified_time,
            "LastRunTime": pipeline.last_run_time,
            "ParallelismConfiguration": _parallelism(pipeline.parallelism),
        }
    )


def pipeline_summary(pipeline: Pipeline) -> dict[str, Any]:
    """``PipelineSummary`` of ``ListPipelines``."""
    return _compact(
        {
            "PipelineArn": pipeline.arn,
            "PipelineName": pipeline.name,
            "PipelineDisplayName": pipeline.display_name,
            "PipelineDescription": pipeline.description,
            "RoleArn": pipeline.role_arn,
            "CreationTime": pipeline.creation_time,
            "LastModifiedTime": pipeline.last_modified_time,
            "LastExecutionTime": pipeline.last_run_time,
        }
    )


def version_summary(pipeline: Pipeline, version: PipelineVersion) -> dict[str, Any]:
    """``PipelineVersionSummary`` of ``ListPipelineVersions``."""
    return _compact(
        {
            "PipelineArn": pipeline.arn,
            "PipelineVersionId": version.id,
            "CreationTime": version.creation_time,
            "PipelineVersionDescription": version.description,
            "PipelineVersionDisplayName": version.display_name,
            "LastExecutionPipelineExecutionArn": version.last_execution_arn,
        }
    )


def describe_execution(execution: Execution, account: str) -> dict[str, Any]:
    """``DescribePipelineExecutionResponse``."""
    return _compact(
        {
            "PipelineVersionId": execution.version.id,
            "CreatedBy": user_context(account),
            "LastModifiedBy": user_context(account),
            "PipelineArn": execution.pipeline.arn,
            "PipelineExecutionArn": execution.arn,
            "PipelineExecutionDisplayName": execution.display_name,
            "PipelineExecutionStatus": execution.status.value,
            "PipelineExecutionDescription": execution.description,
            "PipelineExperimentConfig": execution.experiment,
            "FailureReason": execution.failure_reason,
            "CreationTime": execution.creation_time,
            "LastModifiedTime": execution.last_modified_time,
            "ParallelismConfiguration": _parallelism(execution.parallelism),
            "SelectiveExecutionConfig": execution.selective_config,
            "MLflowConfig": execution.mlflow,
        }
    )


def execution_summary(execution: Execution) -> dict[str, Any]:
    """``PipelineExecutionSummary`` of ``ListPipelineExecutions``."""
    return _compact(
        {
            "PipelineExecutionArn": execution.arn,
            "StartTime": execution.creation_time,
            "PipelineExecutionStatus": execution.status.value,
            "PipelineExecutionDescription": execution.description,
            "PipelineExecutionDisplayName": execution.display_name,
            "PipelineExecutionFailureReason": execution.failure_reason,
        }
    )


def execution_step(run: StepRun) -> dict[str, Any]:
    """``PipelineExecutionStep`` of ``ListPipelineExecutionSteps``, with the ``Metadata`` of its type."""
    return _compact(
        {
            "StepName": run.spec.name,
            "StepDisplayName": run.spec.display_name,
            "StepDescription": run.spec.description,
            "StartTime": run.start_time,
            "EndTime": run.end_time,
            "StepStatus": run.status.value,
            "FailureReason": run.failure_reason,
            "Metadata": run.metadata if run.metadata is not None else _callback_metadata(run),
            "AttemptCount": run.attempt,
            "CacheHitResult": _source(run.cache_source),
            "SelectiveExecutionResult": _source(run.selective_source),
            "IterationContext": _iteration(run),
        }
    )


def _source(arn: str | None) -> dict[str, str] | None:
    return None if arn is None else {"SourcePipelineExecutionArn": arn}


def _iteration(run: StepRun) -> dict[str, Any] | None:
    iteration = run.iteration
    if iteration is None:
        return None
    return {"ParentStepName": iteration.parent, "Index": iteration.index, "Item": to_text(iteration.item)}


def _callback_metadata(run: StepRun) -> dict[str, Any]:
    if not run.token:  # a Condition/Fail step that failed before it had metadata
        return {}
    callback = _compact(
        {
            "CallbackToken": run.token,
            "SqsQueueUrl": run.queue_url or None,
            "OutputParameters": run.outputs,
        }
    )
    return {"Callback": callback}
