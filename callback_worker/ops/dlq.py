"""``dlq list`` and ``dlq answer``: see the callback messages that fell into the dead-letter queue, and answer their
steps so that their pipelines go on.

``list`` holds the messages only while it reads them (:data:`~callback_worker.ops.queues.PEEK_VISIBILITY` seconds
at most) and releases them before it asks SageMaker about their steps. ``answer`` releases the messages it did not
select at once. A body is untrusted (anyone allowed to send to the queue, or to the DLQ, wrote it), so ``answer``
trusts SageMaker, not the body: it answers a token only when ListPipelineExecutionSteps of the execution the body
names lists it as a callback step still waiting (``Starting``, ``Executing``, or ``Stopping``: a stopping step waits
for the answer that stops it). It refuses the rest and says why: the token is not listed under that execution (a
body claiming one execution with another's token), the listing failed (an inconclusive look-up never answers), or the
step already finished. Each answered one gets the worker's own request (the deterministic ``ClientRequestToken`` of
:mod:`worker.outcome`), then its message is deleted. A step that already has an outcome (listed so, or
``ConflictException``) counts as done and its message is deleted too, so running ``answer`` again, or after an
interruption, finishes the job and changes nothing twice. A refused message, or one whose body holds no token, is
kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from callback_worker.ops.aws import guarded, sagemaker_client, sqs_client
from callback_worker.ops.deadletters import DeadLetter, read_dead_letter, resolve_steps
from callback_worker.ops.dlqviews import Answered, answered_json, answered_text, list_json, list_text
from callback_worker.ops.errors import ExitCode, UsageError
from callback_worker.ops.inputs import check_execution_arn, failure_outcome, parse_pairs, success_outcome
from callback_worker.ops.queues import PEEK_VISIBILITY, Peek, dead_letter_queue, peek, source_queue_url
from callback_worker.ops.reads import WAITING_STEP_STATUSES
from callback_worker.ops.tables import complain, emit
from callback_worker.worker.outcome import Outcome, Success
from callback_worker.worker.retrying import error_code

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

#: Seconds the messages ``answer`` selected stay hidden at most, should it die before deleting them.
ANSWER_VISIBILITY = 120
#: Results that leave the message in the queue and make ``answer`` exit 3.
KEPT_RESULTS = frozenset({"not found", "no token", "refused"})

Selector = Callable[[Sequence[DeadLetter]], list[DeadLetter]]


@guarded
def list_messages(args: argparse.Namespace) -> int:
    """``dlq list [--queue-url URL]``."""
    sqs = sqs_client()
    queue = dead_letter_queue(sqs, source_queue_url(args.queue_url))
    with peek(sqs, queue.url) as held:
        letters = [read_dead_letter(message) for message in held.read_all(PEEK_VISIBILITY)]
    letters = sorted(resolve_steps(sagemaker_client(), letters), key=_oldest_first)
    now = datetime.now(UTC)
    if args.json:
        emit(list_json(queue, letters, now))
    elif letters:
        emit(list_text(letters, now))
    else:
        complain(f"the dead-letter queue {queue.url} is empty")
    return ExitCode.OK


@guarded
def answer(args: argparse.Namespace) -> int:
    """``dlq answer (--all | --execution-arn ARN... | --message-id ID...) (--reason T | --succeed [--output N=V]...)``
    with ``--dry-run`` to send and delete nothing."""
    outcome = chosen_outcome(args)
    select = selector(args)
    sqs = sqs_client()
    queue = dead_letter_queue(sqs, source_queue_url(args.queue_url))
    sagemaker = sagemaker_client()
    with peek(sqs, queue.url) as held:
        letters = [read_dead_letter(message) for message in held.read_all(ANSWER_VISIBILITY)]
        chosen = select(letters)
        chosen_ids = {letter.message_id for letter in chosen}
        held.release([letter.received for letter in letters if letter.message_id not in chosen_ids])
        chosen = resolve_steps(sagemaker, sorted(chosen, key=_oldest_first))
        results = [answer_one(sagemaker, held, letter, outcome, dry_run=args.dry_run) for letter in chosen]
    _report_unmatched(args, letters)
    name = "Success" if isinstance(outcome, Success) else "Failure"
    if args.json:
        emit(answered_json(queue, name, results))
    elif results:
        emit(answered_text(name, results))
    else:
        complain(f"no message of {queue.url} matches")
    return ExitCode.NOT_FOUND if any(item.result in KEPT_RESULTS for item in results) else ExitCode.OK


def chosen_outcome(args: argparse.Namespace) -> Outcome:
    """The answer to send: a Success with ``--output``s (``--succeed``), else a Failure with ``--reason``."""
    if args.succeed:
        if args.reason is not None:
            raise UsageError("--reason goes with a Failure; --succeed sends a Success")
        return success_outcome(parse_pairs(args.outputs or [], "--output"))
    if args.outputs:
        raise UsageError("--output goes with --succeed")
    if args.reason is None:
        raise UsageError("give --reason TEXT (the Failure's reason), or --succeed")
    return failure_outcome(args.reason)


def selector(args: argparse.Namespace) -> Selector:
    """The messages ``args`` select: ``--all``, or those of ``--execution-arn`` and ``--message-id`` values."""
    arns = {check_execution_arn(arn) for arn in args.execution_arns or []}
    ids = set(args.message_ids or [])
    if args.all == bool(arns or ids):
        raise UsageError("give --all, or --execution-arn / --message-id (not both)")
    if args.all:
        return list
    return lambda letters: [item for item in letters if item.execution_arn in arns or item.message_id in ids]


def answer_one(
    sagemaker: SageMakerClient, held: Peek, letter: DeadLetter, outcome: Outcome, *, dry_run: bool
) -> Answered:
    """Answer one message's step and delete the message, if SageMaker lists its token under the execution the body
    names as a step still waiting; a step already answered counts as done."""
    if letter.token is None:
        return Answered(letter, "no token", deleted=False)
    why = refusal(letter)
    if why is not None:
        return Answered(letter, "refused", deleted=False, why=why)
    if letter.step_status not in WAITING_STEP_STATUSES:
        finished = f"the step is {letter.step_status}"
        return Answered(letter, "already finished", deleted=not dry_run and _delete(held, letter), why=finished)
    if dry_run:
        return Answered(letter, "would answer", deleted=False)
    try:
        send_outcome(sagemaker, outcome, letter.token)
        result = "answered"
    except ClientError as exc:
        code = error_code(exc)
        if code == "ResourceNotFound":
            return Answered(letter, "not found", deleted=False)
        if code != "ConflictException":
            raise
        result = "already answered"
    return Answered(letter, result, deleted=_delete(held, letter))


def refusal(letter: DeadLetter) -> str | None:
    """Why SageMaker does not vouch for ``letter``'s token under the execution its body names (None: it lists the
    token there, as a callback step)."""
    if letter.lookup_error is not None:
        return f"look-up failed: {letter.lookup_error}"
    if letter.step_status is None:
        return "not listed under this execution"
    return None


def _delete(held: Peek, letter: DeadLetter) -> bool:
    held.client.delete_message(QueueUrl=held.url, ReceiptHandle=letter.received.receipt_handle)
    held.take(letter.received)
    return True


def send_outcome(sagemaker: SageMakerClient, outcome: Outcome, token: str) -> None:
    """The request the worker sends for ``outcome`` (same ClientRequestToken: a repeat is a replay)."""
    if isinstance(outcome, Success):
        sagemaker.send_pipeline_execution_step_success(**outcome.request(token))
    else:
        sagemaker.send_pipeline_execution_step_failure(**outcome.request(token))


def _report_unmatched(args: argparse.Namespace, letters: Sequence[DeadLetter]) -> None:
    present = {letter.message_id for letter in letters}
    for message_id in sorted(set(args.message_ids or []) - present):
        complain(f"message {message_id} is not in the dead-letter queue (answered or redriven already?)")


def _oldest_first(letter: DeadLetter) -> tuple[datetime, str]:
    return letter.sent or datetime.max.replace(tzinfo=UTC), letter.message_id
