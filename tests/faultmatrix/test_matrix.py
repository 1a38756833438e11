"""The fault matrix run through the real dispatcher: every cell of :mod:`tests.faultmatrix.catalogue`, one at a time.

Each cell's fault hits its operation (the next call, or every call for 30 seconds from the first one) while four
callback steps, each in an execution of its own, go through one replica (:mod:`tests.faultmatrix.harness`): a
handler returning a Success with outputs, one returning Retry once and then a Success (a re-queue, its lease
confirmation, the old link's delete), one raising Fail, and one working 40 s (lease renewals). Listing cells run twice:
the fault on first pages, and on later pages only (each execution then lists 105 finished steps before its callback
step, which is on the second page). ``DescribePipelineExecution`` cells run with step context on (``describe=True``);
``ChangeMessageVisibility`` is only called to release leases at shutdown, so its cells shut the replica down at 5 s
(cancelling the slow handler) and go on with a new one; ``GetQueueAttributes`` is the start-up check as ``run`` makes
it on AWS's own endpoints (``worker.app.check_queue``, its window included), restarted every 10 s while it refuses to
start: it may refuse only for a fault that is certain to be a mistake (no such queue).

What each fault must lead to is :data:`EXPECTED`, written out by hand from the promise and the error table
(``worker/taxonomy.py``): everything not in it is transient, and the run must end as if there had been no fault.
:func:`judge` checks, for each cell:

1. at most one distinct answer per step, and no other answer even attempted after it (no ConflictException);
2. the answer is the decided one — except for the steps the fault itself spoke about (the *affected* steps, those
   named in the calls that failed), whose outcome is the table's;
3. the handler completed once per state on the way to the decided answer (a call the shutdown of the
   ``ChangeMessageVisibility`` cells cancels under way did not complete, and runs again), was never started again after
   it completed, and only ever ran for a step SageMaker listed as Executing;
4. no message deleted while its step waits unanswered and no other message of the token is left — unless SageMaker
   itself (the fault) said the execution or the token is gone or the step already answered;
5. liveness: the run comes to rest (the queue empty, no delivery running, no lease held) within an hour of simulated
   time, and every step not affected is answered;
6. the error-level log lines are exactly those the table allows for the cell (see :func:`allowed_errors`).

Size: ``FAULT_MATRIX=full`` runs every cell (about half a minute); by default a stratified sample of
:data:`SAMPLE_SIZE` (every operation and duration, every fault code) plus every cell the table names. The run's
summary is printed at the end (``conftest.py``) and written to ``build/fault-matrix.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest
import structlog

from callback_worker.worker.app import check_queue
from callback_worker.worker.preflight import Endpoint
from callback_worker.worker.taxonomy import startup_fault
from tests.fakes import Answer, CallbackStep
from tests.faultmatrix import catalogue
from tests.faultmatrix.catalogue import Cell
from tests.faultmatrix.harness import (
    FAIL_REASON,
    PIPELINE,
    HandlerCall,
    Hang,
    Injector,
    World,
    answered_as_decided,
    decided,
    run_world,
    short,
    states_of,
)

SAMPLE_SIZE = 80
SAMPLE_SEED = 20_260_101
FULL = os.environ.get("FAULT_MATRIX", "").strip().lower() == "full"
LIST = "ListPipelineExecutionSteps"
FILLERS = 105
"""Finished steps listed before each execution's callback step in the later-page variant (a page holds 100)."""


class Effect(StrEnum):
    """What a fault does to the steps it names (see :data:`EXPECTED`)."""

    TRANSIENT = "transient: retried (or the call is not needed); every step ends as if there had been no fault"
    EXECUTION_GONE = "the execution is gone: its message deleted, no handler run (again), the step left unanswered"
    NO_EXPERIMENT = "describe says the execution is gone: ignored, the handler runs without experiment names"
    ALREADY_ANSWERED = "the step already has an answer: the message deleted, the step left as SageMaker has it"
    TOKEN_UNKNOWN = "SageMaker does not know the token: the message deleted, the step left as SageMaker has it"
    OUTPUTS_REJECTED = "SageMaker rejected the outputs: the step answered a Failure that says so"
    REASON_REJECTED = "SageMaker rejected the failure reason: the step answered a plain Failure"
    CONTINUATION_REFUSED = "SQS refused the continuation's body: the step answered a Failure that says so"


@dataclass(frozen=True)
class Expect:
    effect: Effect
    errors: frozenset[str] = frozenset()
    """Error-level log events the cell must log (and may)."""
    also: frozenset[str] = frozenset()
    """Further error-level log events it may log."""


GONE_LOG = "SageMaker does not know this pipeline execution; deleting the message, nothing runs"
UNKNOWN_TOKEN_LOG = "SageMaker does not know this callback token; deleting the message"
OUTPUTS_LOG = "SageMaker rejected the outputs; reporting a failure instead"
REASON_LOG = "SageMaker rejected the failure reason; reporting a plain one instead"
PLAIN_REJECTED_LOG = "SageMaker rejected the failure report"
CONTINUATION_LOG = "SQS refused the continuation; answering the step with a failure"
DELETE_GAVE_UP_LOG = "delete failed; the message will be delivered again"

#: (operation, code, where) -> what the fault must lead to. ``where`` is "first page" / "later page" for the listing
#: (a later page's error says nothing about the execution), else "". Every fault not here is transient.
EXPECTED: dict[tuple[str, str, str], Expect] = {
    (LIST, "ResourceNotFound", "first page"): Expect(Effect.EXECUTION_GONE, frozenset({GONE_LOG})),
    ("DescribePipelineExecution", "ResourceNotFound", ""): Expect(Effect.NO_EXPERIMENT),
    ("SendPipelineExecutionStepSuccess", "ConflictException", ""): Expect(Effect.ALREADY_ANSWERED),
    ("SendPipelineExecutionStepFailure", "ConflictException", ""): Expect(Effect.ALREADY_ANSWERED),
    ("SendPipelineExecutionStepSuccess", "ResourceNotFound", ""): Expect(
        Effect.TOKEN_UNKNOWN, frozenset({UNKNOWN_TOKEN_LOG})
    ),
    ("SendPipelineExecutionStepFailure", "ResourceNotFound", ""): Expect(
        Effect.TOKEN_UNKNOWN, frozenset({UNKNOWN_TOKEN_LOG})
    ),
    ("SendPipelineExecutionStepSuccess", "ValidationException", ""): Expect(
        Effect.OUTPUTS_REJECTED, frozenset({OUTPUTS_LOG})
    ),
    # For 30 s the plain reason is refused too (logged): the step must still end with a Failure, the handler not
    # run again.
    ("SendPipelineExecutionStepFailure", "ValidationException", ""): Expect(
        Effect.REASON_REJECTED, frozenset({REASON_LOG}), frozenset({PLAIN_REJECTED_LOG})
    ),
    ("SendMessage", "InvalidMessageContents", ""): Expect(Effect.CONTINUATION_REFUSED, frozenset({CONTINUATION_LOG})),
}
TRANSIENT = Expect(Effect.TRANSIENT)

#: Effects under which SageMaker (the fault) said the step needs no answer from this message: deleting it unanswered
#: is what the table asks.
DELETES_UNANSWERED = frozenset({Effect.EXECUTION_GONE, Effect.ALREADY_ANSWERED, Effect.TOKEN_UNKNOWN})


def expected(cell: Cell, where: str) -> Expect:
    return EXPECTED.get((cell.operation, cell.fault.code, where), TRANSIENT)


def allowed_errors(cell: Cell, expect: Expect) -> frozenset[str]:
    """The error-level events a cell may log: its table entry's; and, when deletes fail for 30 s, the give-up of the
    delete of an answered message (it comes back and is dropped as answered: the step is not affected)."""
    allowed = expect.errors | expect.also
    if cell.operation == "DeleteMessageBatch" and cell.duration == "30s":
        allowed |= {DELETE_GAVE_UP_LOG}
    return allowed


# -- the cases ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    cell: Cell
    where: str

    @property
    def id(self) -> str:
        return self.cell.id + (f"@{self.where.replace(' ', '-')}" if self.where else "")


def cases(cells: list[Cell]) -> list[Case]:
    return [
        Case(cell, where)
        for cell in cells
        for where in (("first page", "later page") if cell.operation == LIST else ("",))
    ]


def chosen(cells: list[Cell]) -> list[Cell]:
    """Every cell (``FAULT_MATRIX=full``), or the stratified sample plus every cell :data:`EXPECTED` names (both
    durations): the faults that are not transient are always run."""
    if FULL:
        return cells
    named = {(operation, code) for operation, code, _ in EXPECTED}
    picked = set(catalogue.sample(cells, SAMPLE_SIZE, seed=SAMPLE_SEED))
    return [cell for cell in cells if cell in picked or (cell.operation, cell.fault.code) in named]


ALL_CELLS = catalogue.cells()
CASES = cases(chosen(ALL_CELLS))
#: For the run's summary (``conftest.py``).
MATRIX = {"mode": "full" if FULL else "sample", "cases": len(CASES), "of": len(cases(ALL_CELLS))}


#: SQS's own endpoint, as a worker on AWS reaches it (no ``AWS_ENDPOINT_URL*`` override).
AWS_SQS = Endpoint("SQS", "https://sqs.us-east-1.amazonaws.com", "the default for us-east-1", "us-east-1")


async def scenario(world: World, cell: Cell, where: str) -> None:
    world.use(
        Injector(
            frozenset({cell.operation}),
            lambda _: cell.exception(),
            world.now,
            world.trace,
            duration=None if cell.duration == "once" else 30.0,
            page="later" if where == "later page" else "first",
        )
    )
    world.start_steps()
    if cell.operation == "GetQueueAttributes":
        await world.start_up(lambda: check_queue(world.queue, AWS_SQS))
    replica = world.new_replica()
    if cell.operation == "ChangeMessageVisibility":
        await world.drive(replica, stop_after=5.0)
        await world.shut_down(replica, grace=0.0)
        replica = world.new_replica()
    await world.drive(replica)


# -- judging a run ----------------------------------------------------------------------------------------------------


def affected(world: World, expect: Expect) -> dict[str, float]:
    """The run's steps the fault spoke about (named by a failed call: a token, or an execution's steps), each with
    the time of the first such call."""
    if expect.effect is Effect.TRANSIENT:
        return {}
    first: dict[str, float] = {}
    for hit in world.injector.hits:
        for token in [hit.subject] if hit.subject in world.kinds else world.tokens_of_execution(hit.subject):
            first.setdefault(token, hit.at)
    return first


def _none(outcome: Answer | None) -> bool:
    return outcome is None


def _failure(check: Callable[[str], bool]) -> Callable[[Answer | None], bool]:
    return lambda outcome: outcome is not None and outcome.kind == "failure" and check(outcome.reason or "")


PLAIN_REASON = "SageMaker refused the worker's failure reason"
#: The answer a step the fault spoke about must end with, per effect (the other effects: the decided answer).
AFFECTED_ANSWER: dict[Effect, tuple[str, Callable[[Answer | None], bool]]] = {
    Effect.EXECUTION_GONE: ("no answer (SageMaker said the execution is gone)", _none),
    Effect.ALREADY_ANSWERED: ("no answer (SageMaker said the step already has one)", _none),
    Effect.TOKEN_UNKNOWN: ("no answer (SageMaker said it does not know the token)", _none),
    Effect.OUTPUTS_REJECTED: (
        "a Failure saying SageMaker rejected the outputs",
        _failure(lambda reason: reason.startswith("SageMaker rejected the step's outputs: ValidationException")),
    ),
    Effect.REASON_REJECTED: (
        "a Failure with the handler's reason or the plain one",
        _failure(lambda reason: reason == FAIL_REASON or PLAIN_REASON in reason),
    ),
    Effect.CONTINUATION_REFUSED: (
        "a Failure saying the continuation could not be re-queued",
        _failure(lambda reason: "continuation could not be re-queued: InvalidMessageContents" in reason),
    ),
}


def answer_text(step: CallbackStep) -> str:
    outcome = step.outcome
    if outcome is None:
        return f"no answer (step {step.status})"
    return f"{outcome.kind} {outcome.outputs or outcome.reason!r}"


def check_answers(world: World, expect: Expect, hit: Mapping[str, float]) -> list[str]:
    problems: list[str] = []
    for token, kind in world.kinds.items():
        step, name = world.step(token), f"step {short(token)} ({kind})"
        requests = {answer.request for answer in step.applied}
        if len(requests) > 1:
            problems.append(f"{name} was answered {len(requests)} different ways: {sorted(map(str, requests))}")
        if step.conflicts:
            problems.append(f"{name}: another answer was sent after one applied: {step.conflicts}")
        special = AFFECTED_ANSWER.get(expect.effect) if token in hit else None
        if special is None:
            if not answered_as_decided(step, kind):
                problems.append(f"{name}: should be answered as decided ({decided(kind)}), got {answer_text(step)}")
        elif not special[1](step.outcome):
            problems.append(f"{name}: should end with {special[0]}, got {answer_text(step)}")
    return problems


def repeated_runs(name: str, calls: list[HandlerCall]) -> list[str]:
    """A handler started for a step SageMaker did not list as Executing, or completed twice for one state, or
    started again after it completed."""
    problems = [
        f"{name}: handler started at {call.started:.1f}s while the step was {call.step_status}"
        for call in calls
        if call.step_status != "Executing"
    ]
    for state in {call.state for call in calls}:
        of_state = [call for call in calls if call.state == state]
        done = [call for call in of_state if call.completed]
        if len(done) > 1:
            runs = ", ".join(f"{c.replica} at {c.started:.1f}s ({c.end})" for c in done)
            problems.append(f"{name}: handler ran {len(done)} times for state {state}: {runs}")
        elif done and any(call.started > done[0].started for call in of_state):
            problems.append(f"{name}: handler started again for state {state} after it completed")
    return problems


def check_handler(world: World, expect: Expect, hit: Mapping[str, float]) -> list[str]:
    problems: list[str] = []
    effect = expect.effect
    for token, kind in world.kinds.items():
        name, calls = f"step {short(token)} ({kind})", world.calls_of(token)
        problems += repeated_runs(name, calls)
        completed = {call.state for call in calls if call.completed}
        if token in hit and effect is Effect.EXECUTION_GONE:
            # Dropped where the listing said so: the handler may have run for earlier links, never after.
            late = [call for call in calls if call.started >= hit[token]]
            if late:
                problems.append(
                    f"{name}: SageMaker said its execution is gone; its handler ran at {late[0].started:.1f}s"
                )
        else:
            want = {None} if token in hit and effect is Effect.CONTINUATION_REFUSED else states_of(kind)
            if completed != want:
                problems.append(f"{name}: handler completed states {sorted(map(str, completed))}, expected {want}")
        if world.describe and calls:
            names = {call.experiment_name for call in calls}
            want_names = {None} if token in hit and effect is Effect.NO_EXPERIMENT else {PIPELINE}
            if names != want_names:
                problems.append(f"{name}: handler saw experiment names {names}, expected {want_names}")
    return problems


def check_deletes_and_rest(world: World, expect: Expect, hit: Mapping[str, float]) -> list[str]:
    problems = [
        f"{deletion.message_id} (step {short(deletion.token)} link {deletion.link}) deleted at {deletion.at:.1f}s "
        f"while the step was {deletion.step_status}, unanswered, with no other message of its token"
        for deletion in world.deletions
        if not (deletion.token in hit and expect.effect in DELETES_UNANSWERED)
    ]
    left = [f"{m.message_id} ({m.body[:80]})" for m in world.queue.live()]
    if left:
        problems.append(f"messages left in the queue: {left}")
    held = [lease.message.receipt_handle for replica in world.replicas for lease in replica.leases.leases.values()]
    if held:
        problems.append(f"leases still held at rest: {held}")
    return problems


def check_logs(cell: Cell, expect: Expect, logs: Sequence[Mapping[str, Any]]) -> list[str]:
    seen = {str(entry.get("event")) for entry in logs if entry.get("log_level") in ("error", "critical")}
    problems = []
    unexpected = seen - allowed_errors(cell, expect)
    if unexpected:
        problems.append(f"unexpected error-level log lines: {sorted(unexpected)}")
    missing = expect.errors - seen
    if missing:
        problems.append(f"missing error-level log lines: {sorted(missing)}")
    return problems


def judge(world: World, cell: Cell, expect: Expect, logs: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = list(world.violations)
    if not world.injector.hits:
        problems.append(f"the fault never hit {cell.operation}: the cell tests nothing")
    if cell.duration == "once" and len(world.injector.hits) > 1:
        problems.append(f"a 'once' fault hit {len(world.injector.hits)} calls")
    hit = affected(world, expect)
    if expect.effect is not Effect.TRANSIENT and not hit:
        problems.append(f"the fault named none of the run's steps ({world.injector.hits})")
    problems += check_answers(world, expect, hit)
    problems += check_handler(world, expect, hit)
    problems += check_deletes_and_rest(world, expect, hit)
    problems += check_logs(cell, expect, logs)
    problems += check_start_up(world, cell)
    return problems


def check_start_up(world: World, cell: Cell) -> list[str]:
    """A start-up fault that may pass is waited out within the window (no exit, no crash-loop); one certain to be a
    mistake stops start-up."""
    if cell.operation != "GetQueueAttributes":
        return []
    final = startup_fault(cell.exception()).final
    if final and not world.startup_refusals:
        return ["start-up went on past a fault certain to be a mistake"]
    if not final and world.startup_refusals:
        return [f"start-up refused {world.startup_refusals} time(s) on a fault that may pass"]
    return []


def explain(case: Case, expect: Expect, world: World, problems: list[str], logs: Sequence[Mapping[str, Any]]) -> str:
    errors = [f"{entry.get('event')} {entry.get('error', '')}" for entry in logs if entry.get("log_level") == "error"]
    lines = [
        f"{case.id}: expected {expect.effect.name} ({expect.effect.value})",
        *(f"  - {problem}" for problem in problems),
        "error-level log lines: " + ("; ".join(errors) or "none"),
        "trace:",
        world.trace.tail(),
    ]
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_cell(case: Case) -> None:
    cell, where = case.cell, case.where
    expect = expected(cell, where)
    with structlog.testing.capture_logs() as logs:
        try:
            world, _ = run_world(
                lambda w: scenario(w, cell, where),
                seed=case.id,
                describe=cell.operation == "DescribePipelineExecution",
                fillers=FILLERS if where == "later page" else 0,
            )
        except Hang as hang:
            pytest.fail(f"{case.id}: HANG (expected {expect.effect.name})\n{hang}")
    problems = judge(world, cell, expect, logs)
    if problems:
        pytest.fail(explain(case, expect, world, problems, logs), pytrace=False)


def test_the_table_names_only_faults_of_the_catalogue() -> None:
    """A table entry for a fault the catalogue does not generate would never be checked."""
    generated = {(cell.operation, cell.fault.code) for cell in ALL_CELLS}
    stale = [key for key in EXPECTED if key[:2] not in generated]
    assert not stale, f"table entries with no cell: {stale}"
