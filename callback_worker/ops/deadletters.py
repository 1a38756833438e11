"""What a dead-lettered callback message says: its token, execution, status and why it may have failed, and (when
SageMaker can tell) the step it belongs to.

The body is read with the worker's own parser (:func:`worker.message.parse_message`), so a body the worker could not
read is described by the same reason the worker logged. The step is found by its ``CallbackToken`` in
ListPipelineExecutionSteps of the execution the body names, one call per execution: a token that listing does not
hold is not that execution's, whatever the body claims. When the call fails (no permission, an execution SageMaker no
longer knows, no connection) the step is left unresolved, the letter keeps the reason, and it is said once on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from callback_worker.ops.queues import Received
from callback_worker.ops.reads import execution_steps
from callback_worker.ops.tables import complain
from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.message import CallbackMessage, Continuation, claimed_continuation, parse_message
from callback_worker.worker.retrying import error_code

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message of a dead-letter queue and what its body and SageMaker say about it."""

    received: Received
    token: str | None
    execution_arn: str | None
    status: str | None
    """``Executing`` or ``Stopping`` (the message's own status); None for a body the worker cannot read."""
    why: str | None
    """What the body says about why it was not answered, when it says anything."""
    step_name: str | None = None
    step_status: str | None = None
    """The step SageMaker lists under ``execution_arn`` with this token (None: not listed, or not looked up)."""
    lookup_error: str | None = None
    """Why the execution's steps could not be listed (None: listed, or nothing to look up)."""

    @property
    def message_id(self) -> str:
        return self.received.message_id

    @property
    def receive_count(self) -> int | None:
        return _int(self.received.attributes.get("ApproximateReceiveCount"))

    @property
    def sent(self) -> datetime | None:
        """When the message was first sent (SQS keeps ``SentTimestamp`` when it moves a message to a DLQ)."""
        millis = _int(self.received.attributes.get("SentTimestamp"))
        return datetime.fromtimestamp(millis / 1000, UTC) if millis is not None else None


def read_dead_letter(received: Received) -> DeadLetter:
    """The :class:`DeadLetter` of one received message (its step not yet resolved)."""
    try:
        message = parse_message(received.body)
    except MalformedMessage as exc:
        return DeadLetter(received, exc.token, exc.pipeline_execution_arn, None, f"unreadable body: {exc.reason}")
    history = body_history(message, claimed_continuation(received.body))
    return DeadLetter(received, message.token, message.pipeline_execution_arn, message.status.value, history)


def body_history(message: CallbackMessage, claimed: Continuation) -> str | None:
    """What a worker wrote into a body it re-queued, as the body claims it (only the worker's key could tell whether a
    worker wrote it; nothing here acts on it): crashed attempts and continuations; None for SageMaker's own message,
    which says nothing about why it was not answered."""
    notes = []
    crashes = claimed.attempt - 1
    if crashes:
        notes.append(f"the handler crashed {crashes} time(s)")
    if claimed.continuations:
        notes.append(f"the handler asked to be called again {claimed.continuations} time(s)")
    if message.status.value == "Stopping":
        notes.append("the pipeline is stopping")
    return "; ".join(notes) or None


def resolve_steps(client: SageMakerClient, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """``letters`` with the step name and status of each token SageMaker lists under the letter's execution (one
    call per execution), or with why that listing failed."""
    steps_by_execution: dict[str, Mapping[str, Mapping[str, Any]]] = {}
    problems: dict[str, str] = {}
    for arn in {letter.execution_arn for letter in letters if letter.execution_arn and letter.token}:
        try:
            steps_by_execution[arn] = _steps_by_token(execution_steps(client, arn))
        except ClientError as exc:
            problems[arn] = f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        except BotoCoreError as exc:
            problems[arn] = f"{type(exc).__name__}: {exc}"
    for problem in sorted(set(problems.values())):
        complain(f"some steps could not be looked up ({problem})")
    return [_with_step(letter, steps_by_execution, problems) for letter in letters]


def _steps_by_token(steps: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for step in steps:
        token = ((step.get("Metadata") or {}).get("Callback") or {}).get("CallbackToken")
        if isinstance(token, str):
            found[token] = step
    return found


def _with_step(
    letter: DeadLetter, steps: Mapping[str, Mapping[str, Mapping[str, Any]]], problems: Mapping[str, str]
) -> DeadLetter:
    problem = problems.get(letter.execution_arn or "")
    if problem is not None:
        return replace(letter, lookup_error=problem)
    step = steps.get(letter.execution_arn or "", {}).get(letter.token or "")
    if step is None:
        return letter
    return replace(letter, step_name=step.get("StepName"), step_status=step.get("StepStatus"))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
