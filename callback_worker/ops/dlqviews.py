"""What the ``dlq`` commands show: dead-lettered messages, the fate of each answered one, and a redrive's result.

Tokens are masked with :func:`worker.logs.redact_token`; JSON keeps SQS's and SageMaker's member names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callback_worker.ops.deadletters import DeadLetter
from callback_worker.ops.durations import age_text
from callback_worker.ops.queues import DeadLetterQueue
from callback_worker.ops.tables import table, to_json
from callback_worker.ops.views import execution_id, masked, pipeline_name

LIST_HEADERS = ("Message id", "Pipeline", "Execution", "Step", "Step status", "Receives", "Age", "Token", "Why")
ANSWER_HEADERS = ("Message id", "Execution", "Step", "Token", "Result")


@dataclass(frozen=True, slots=True)
class Answered:
    """What ``dlq answer`` did with one selected message."""

    letter: DeadLetter
    result: str
    """``answered``, ``already answered``, ``already finished``, ``would answer`` (dry run), ``refused``,
    ``not found`` or ``no token``."""
    deleted: bool
    why: str | None = None
    """Why a step was refused, or how it finished."""


def list_text(letters: Sequence[DeadLetter], now: datetime) -> str:
    """``dlq list``: one row per dead-lettered message, oldest first."""
    rows = [
        (
            letter.message_id,
            pipeline_name(letter.execution_arn or ""),
            execution_id(letter.execution_arn) if letter.execution_arn else None,
            letter.step_name,
            letter.step_status,
            letter.receive_count,
            age_text(now - letter.sent) if letter.sent else None,
            masked(letter.token),
            letter.why,
        )
        for letter in letters
    ]
    return table(LIST_HEADERS, rows)


def list_json(queue: DeadLetterQueue, letters: Sequence[DeadLetter], now: datetime) -> str:
    """``dlq list --json``: the queues, then one object per message."""
    return to_json({**queue_json(queue), "Messages": [letter_json(letter, now) for letter in letters]})


def letter_json(letter: DeadLetter, now: datetime) -> dict[str, Any]:
    """One dead-lettered message for scripts (``ApproximateReceiveCount`` counts this read too)."""
    return {
        "MessageId": letter.message_id,
        "PipelineName": pipeline_name(letter.execution_arn or ""),
        "PipelineExecutionArn": letter.execution_arn,
        "StepName": letter.step_name,
        "StepStatus": letter.step_status,
        "Status": letter.status,
        "ApproximateReceiveCount": letter.receive_count,
        "SentTimestamp": letter.sent,
        "AgeSeconds": int((now - letter.sent).total_seconds()) if letter.sent else None,
        "CallbackToken": masked(letter.token),
        "Why": letter.why,
    }


def queue_json(queue: DeadLetterQueue) -> dict[str, Any]:
    return {
        "QueueUrl": queue.source_url,
        "DeadLetterQueueUrl": queue.url,
        "MaxReceiveCount": queue.max_receive_count,
    }


def answered_text(outcome: str, results: Sequence[Answered]) -> str:
    """``dlq answer``: one row per selected message and what became of it."""
    rows = [
        (
            item.letter.message_id,
            execution_id(item.letter.execution_arn) if item.letter.execution_arn else None,
            item.letter.step_name,
            masked(item.letter.token),
            _result_text(outcome, item),
        )
        for item in results
    ]
    return table(ANSWER_HEADERS, rows)


def answered_json(queue: DeadLetterQueue, outcome: str, results: Sequence[Answered]) -> str:
    """``dlq answer --json``."""
    messages = [
        {
            "MessageId": item.letter.message_id,
            "PipelineExecutionArn": item.letter.execution_arn,
            "StepName": item.letter.step_name,
            "CallbackToken": masked(item.letter.token),
            "Result": item.result,
            "Why": item.why,
            "Deleted": item.deleted,
        }
        for item in results
    ]
    return to_json({**queue_json(queue), "Outcome": outcome, "Messages": messages})


def _result_text(outcome: str, item: Answered) -> str:
    text = f"{item.result} with {outcome}" if item.result in ("answered", "would answer") else item.result
    text += f" ({item.why})" if item.why else ""
    return text + ("; deleted" if item.deleted else "; kept" if item.result != "would answer" else "")


def redrive_text(queue: DeadLetterQueue, report: Mapping[str, Any]) -> str:
    """``dlq redrive``: how the messages moved (or would move) and how many."""
    method = report["Method"]
    if method == "StartMessageMoveTask":
        task = report.get("Task") or {}
        state = "started" if report.get("Started") else str(task.get("Status", "")).lower() or "found"
        moved = task.get("ApproximateNumberOfMessagesMoved")
        progress = f"; {moved} of {task.get('ApproximateNumberOfMessagesToMove')} moved" if moved is not None else ""
        return f"message move task {state} from {queue.url} to {queue.source_url}{progress}"
    if report.get("DryRun"):
        return f"would move {report['Visible']} visible message(s) from {queue.url} to {queue.source_url} ({method})"
    return f"moved {report['Moved']} message(s) from {queue.url} to {queue.source_url} ({method})"


def redrive_json(queue: DeadLetterQueue, report: Mapping[str, Any]) -> str:
    """``dlq redrive --json``."""
    return to_json({**queue_json(queue), **report})
