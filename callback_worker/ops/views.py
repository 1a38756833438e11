"""What each operator command shows: the service's answers turned into tables, labelled fields or JSON.

Tokens are masked here, at the boundary, with :func:`worker.logs.redact_token`; JSON keeps the API's member names.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callback_worker.ops.tables import fields, table, to_json
from callback_worker.worker.logs import redact_token
from callback_worker.worker.message import EXECUTION_ARN_PATTERN

STEP_HEADERS = ("Step", "Status", "Started", "Queue", "Token", "Outputs", "Failure reason")
PENDING_HEADERS = ("Pipeline", "Execution", "Step", "Status", "Started", "Queue", "Token")
_OPTIONAL_FIELDS = (("Display name", "PipelineExecutionDisplayName"), ("Description", "PipelineExecutionDescription"))


@dataclass(frozen=True, slots=True)
class WaitingStep:
    """A callback step that waits for its answer, with the execution it belongs to."""

    pipeline_name: str
    execution_arn: str
    execution_status: str
    step: Mapping[str, Any]
    """The ``PipelineExecutionStep`` as ListPipelineExecutionSteps returned it."""

    def to_json(self) -> dict[str, Any]:
        callback = callback_of(self.step)
        token = callback.get("CallbackToken")
        return {
            "PipelineName": self.pipeline_name,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineExecutionStatus": self.execution_status,
            "StepName": self.step.get("StepName"),
            "StepStatus": self.step.get("StepStatus"),
            "StartTime": self.step.get("StartTime"),
            "SqsQueueUrl": callback.get("SqsQueueUrl"),
            "CallbackToken": redact_token(token) if isinstance(token, str) else None,
        }


def describe_text(execution: Mapping[str, Any]) -> str:
    """``describe``: one labelled line per fact of a DescribePipelineExecution answer."""
    arn = str(execution.get("PipelineExecutionArn", ""))
    experiment = execution.get("PipelineExperimentConfig") or {}
    items: list[tuple[str, object]] = [("Pipeline", pipeline_name(arn)), ("Execution", arn)]
    for label, key in _OPTIONAL_FIELDS:
        if execution.get(key):
            items.append((label, execution[key]))
    items += [
        ("Status", execution.get("PipelineExecutionStatus")),
        ("Failure reason", execution.get("FailureReason")),
        ("Experiment", experiment.get("ExperimentName")),
        ("Trial", experiment.get("TrialName")),
        ("Created", execution.get("CreationTime")),
        ("Last modified", execution.get("LastModifiedTime")),
    ]
    return fields(items)


def describe_json(execution: Mapping[str, Any]) -> str:
    """``describe --json``: the DescribePipelineExecution answer without its ResponseMetadata."""
    return to_json({key: value for key, value in execution.items() if key != "ResponseMetadata"})


def steps_text(steps: Sequence[Mapping[str, Any]]) -> str:
    """``steps``: one table row per started step."""
    rows = []
    for step in steps:
        callback = callback_of(step)
        rows.append(
            (
                step.get("StepName"),
                step.get("StepStatus"),
                step.get("StartTime"),
                queue_name(callback.get("SqsQueueUrl")),
                masked(callback.get("CallbackToken")),
                outputs_text(callback.get("OutputParameters")),
                step.get("FailureReason"),
            )
        )
    return table(STEP_HEADERS, rows)


def steps_json(steps: Sequence[Mapping[str, Any]]) -> str:
    """``steps --json``: the ``PipelineExecutionStep`` list, callback tokens masked."""
    return to_json([redact_step(step) for step in steps])


def pending_text(waiting: Sequence[WaitingStep]) -> str:
    """``pending``: one table row per waiting callback step."""
    rows = []
    for item in waiting:
        callback = callback_of(item.step)
        rows.append(
            (
                item.pipeline_name,
                execution_id(item.execution_arn),
                item.step.get("StepName"),
                item.step.get("StepStatus"),
                item.step.get("StartTime"),
                queue_name(callback.get("SqsQueueUrl")),
                masked(callback.get("CallbackToken")),
            )
        )
    return table(PENDING_HEADERS, rows)


def pending_json(waiting: Sequence[WaitingStep]) -> str:
    """``pending --json``: one object per waiting callback step."""
    return to_json([item.to_json() for item in waiting])


def answer_text(outcome: str, token: str, execution_arn: str | None) -> str:
    """``succeed`` / ``fail``: what was sent, for which token and execution."""
    where = f" (execution {execution_arn})" if execution_arn else ""
    return f"answered {redact_token(token)} with {outcome}{where}"


def answer_json(outcome: str, token: str, execution_arn: str | None) -> str:
    """``succeed --json`` / ``fail --json``."""
    return to_json({"Outcome": outcome, "CallbackToken": redact_token(token), "PipelineExecutionArn": execution_arn})


def sent_text(message_id: str, queue_url: str, body: Mapping[str, Any]) -> str:
    """``send-test-message``: the message id and the body as sent, its token masked."""
    return f"sent message {message_id} to {queue_url}\n{to_json(redact_body(body))}"


def sent_json(message_id: str, queue_url: str, body: Mapping[str, Any]) -> str:
    """``send-test-message --json``."""
    return to_json({"MessageId": message_id, "QueueUrl": queue_url, "Body": redact_body(body)})


def redact_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a ``PipelineExecutionStep`` with its callback token masked."""
    copied = copy.deepcopy(dict(step))
    callback = callback_of(copied)
    if isinstance(callback.get("CallbackToken"), str):
        callback["CallbackToken"] = redact_token(callback["CallbackToken"])
    return copied


def redact_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a callback message body with its token masked."""
    token = body.get("token")
    return {**body, "token": redact_token(token)} if isinstance(token, str) else dict(body)


def callback_of(step: Mapping[str, Any]) -> Any:
    """``Metadata.Callback`` of a step (an empty dict for a step of another type)."""
    callback = (step.get("Metadata") or {}).get("Callback")
    return callback if isinstance(callback, dict) else {}


def is_callback(step: Mapping[str, Any]) -> bool:
    """Whether ``step`` is a Callback step."""
    return isinstance((step.get("Metadata") or {}).get("Callback"), dict)


def masked(token: object) -> str | None:
    return redact_token(token) if isinstance(token, str) and token else None


def outputs_text(outputs: object) -> str | None:
    """``name=value, name=value`` of OutputParameters; None when there are none."""
    if not isinstance(outputs, list) or not outputs:
        return None
    return ", ".join(f"{item.get('Name')}={item.get('Value')}" for item in outputs if isinstance(item, dict))


def queue_name(url: object) -> str | None:
    """The last path segment of a queue URL (its name)."""
    return url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) and url else None


def pipeline_name(execution_arn: str) -> str | None:
    match = EXECUTION_ARN_PATTERN.fullmatch(execution_arn)
    return match["pipeline"] if match else None


def execution_id(execution_arn: str) -> str:
    match = EXECUTION_ARN_PATTERN.fullmatch(execution_arn)
    return match["execution"] if match else execution_arn


def started(step: Mapping[str, Any]) -> datetime | None:
    """The step's StartTime, for sorting."""
    value = step.get("StartTime")
    return value if isinstance(value, datetime) else None
