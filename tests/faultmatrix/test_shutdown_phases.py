"""A graceful shutdown at every phase a delivery goes through, with the fault that holds it there.

One replica takes the steps until a fault holds their deliveries in a phase, then shuts down as the runtime drains
(:meth:`tests.faultmatrix.harness.World.shut_down`: no more receives, a grace period, the deliveries left cancelled and
waited for, their leases released). A fresh replica (new ``LeaseKeeper``, ``Tokens``, ``Reporter``) then starts on the
same queue and SageMaker, the fault is cleared, and the run goes on until it comes to rest. Phases:

* **verifying** — ``ListPipelineExecutionSteps`` held without an answer, or failing with 503: no handler has started;
  the messages are released and the new replica runs each handler once.
* **running** — a handler still working when the shutdown comes finishes within the grace and its answer is reported;
  the new replica has nothing to do.
* **report waiting** — ``SendPipelineExecutionStep*`` failing with 503: the decided answers are handed on as
  continuation links carrying ``answer`` (``Settler._hand_on``), and the new replica reports them without running a
  handler.
* **re-queue** — ``SendMessage`` failing while a Retry's next link is being sent: finished despite the shutdown when
  SQS takes it within ``SHUTDOWN_SETTLE_LIMIT`` of the cancellation; when it refuses for longer, the documented window
  of ``worker/settle.py`` (the message is released, the handler runs again).
* **delete** — ``DeleteMessageBatch`` failing after the answers and the re-queue: the messages come back to the new
  replica, which sees their steps answered (or their chain moved on) and runs nothing.

Checks, for each phase: every step answered exactly once, with the decided answer; the handler completed once per
state (except within a documented window, which the phase names and the run's summary prints); no message deleted
while its step waits unanswered with no other message of its token; the run comes to rest with the queue empty; the
delivery really was in the phase at the shutdown; only the error-level log lines the phase expects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import structlog

from callback_worker.worker.settle import SHUTDOWN_SETTLE_LIMIT
from tests.faultmatrix import catalogue
from tests.faultmatrix.harness import (
    NOTES,
    HandlerCall,
    Hang,
    Injector,
    Kind,
    World,
    answered_as_decided,
    decided,
    link_of,
    run_world,
    short,
    states_of,
)

#: Seconds after the start at which the replica is told to stop, and its grace period by default.
SHUTDOWN_AT = 5.0
GRACE = 5.0
#: A fault that starts at the first call (t = 0) and ends 10 s after the drain cancels the deliveries left: within
#: SHUTDOWN_SETTLE_LIMIT (15 s) of the cancellation.
SETTLED_WITHIN = SHUTDOWN_AT + GRACE + SHUTDOWN_SETTLE_LIMIT - 5.0
#: Bytes of a step's message left to its token, execution ARN and status when a phase fills the rest with arguments.
PADDING_ROOM = 400
SEND_OPERATIONS = frozenset({"SendPipelineExecutionStepSuccess", "SendPipelineExecutionStepFailure"})

DELETE_GAVE_UP = "delete failed; the message will be delivered again"
HAND_ON_FAILED = "could not hand the answer on; the message will be delivered again"
REQUEUE_GAVE_UP = "re-queue still failing and the lease is ending; the message will be delivered again"


def unavailable(operation: str) -> BaseException:
    """HTTP 503 ServiceUnavailable, as the operation's real client raises it (from the catalogue)."""
    service = catalogue.service_of(operation)
    [fault] = [fault for fault in catalogue.faults_for(service, operation) if fault.code == "ServiceUnavailable"]
    return fault.exception(operation)


@dataclass(frozen=True)
class Window:
    """A documented window met by a phase: ``kind``'s handler runs once more for ``state`` (a second completed call,
    on the new replica)."""

    kind: Kind
    state: int | None
    where: str


@dataclass(frozen=True)
class PhaseCase:
    name: str
    kinds: tuple[Kind, ...]
    operations: frozenset[str] = frozenset()
    hang: bool = False
    duration: float = math.inf
    """Seconds the fault lasts from its first hit; by default until the new replica starts (it is cleared then)."""
    grace: float = GRACE
    retry_delay: float | None = None
    slow_work: float | None = None
    errors: frozenset[str] = frozenset()
    """Error-level log lines the phase may log."""
    window: Window | None = None
    shared_key: bool = True
    """False: each replica seals with a key of its own (none configured), so the new replica takes every link the
    old one sent for a fresh delivery, and every handler may run once more from the start (README: "a handed-on
    answer decided again"; 'What is not guaranteed' 6)."""
    max_message_bytes: int | None = None
    """The queue's MaximumMessageSize, when the phase sets one; the steps' arguments then fill all but
    PADDING_ROOM bytes of it."""
    in_phase: Callable[[World], list[str]] = field(default=lambda _: [])
    """Checks that the deliveries were in the phase at the shutdown (problems, if not)."""


def _on(world: World, replica: str) -> list[HandlerCall]:
    return [call for call in world.calls if call.replica == replica]


def _verifying(world: World) -> list[str]:
    problems = []
    if _on(world, "w1"):
        problems.append(f"a handler started on w1 although its listing never answered: {_on(world, 'w1')}")
    if not world.injector.hits:
        problems.append("the listing was never called")
    return problems


def _running(world: World) -> list[str]:
    slow = [call for call in _on(world, "w1") if call.kind == "slow"]
    problems = []
    if not slow or not slow[0].completed:
        problems.append(f"the slow handler did not finish on w1 within the grace: {slow}")
    elif slow[0].started >= SHUTDOWN_AT or (slow[0].ended or 0) <= SHUTDOWN_AT:
        problems.append(f"the slow handler was not running when the shutdown came: {slow[0]}")
    if len(world.replicas) > 1 and world.replicas[1].tasks:
        problems.append(f"w2 received {len(world.replicas[1].tasks)} messages; everything was settled on w1")
    return problems


def _report_waiting(world: World) -> list[str]:
    problems = []
    if _on(world, "w2"):
        problems.append(f"a handler ran on w2 although every answer was decided on w1: {_on(world, 'w2')}")
    handed_on = {link_of(m.body)[0] for m in world.queue.messages.values() if link_of(m.body)[2]}
    missing = set(world.kinds) - handed_on
    if missing:
        problems.append(f"no answer was handed on for steps {sorted(map(short, missing))}")
    return problems


def _decided_again(world: World) -> list[str]:
    """No shared key: every step's answer is decided again on w2, by its handler run from the start."""
    again = {call.token for call in _on(world, "w2") if call.state is None and call.completed}
    return [f"step {short(token)} was not decided again on w2" for token in sorted(set(world.kinds) - again)]


def _requeue(world: World) -> list[str]:
    first = [call for call in _on(world, "w1") if call.kind == "retry" and call.state is None]
    if not first or first[0].end != "returned Retry":
        return [f"the retry handler did not return Retry on w1: {first}"]
    return []


def _delete(world: World) -> list[str]:
    problems = []
    if _on(world, "w2") and not world.replicas[1].tasks:
        problems.append("w2 ran handlers without receiving anything")
    if not world.injector.hits:
        problems.append("no delete was attempted")
    return problems


PHASES: tuple[PhaseCase, ...] = (
    PhaseCase(
        "verifying, listing held",
        ("success", "retry", "fail"),
        frozenset({"ListPipelineExecutionSteps"}),
        hang=True,
        in_phase=_verifying,
    ),
    PhaseCase(
        "verifying, listing failing",
        ("success", "retry", "fail"),
        frozenset({"ListPipelineExecutionSteps"}),
        in_phase=_verifying,
    ),
    PhaseCase("running", ("slow", "success"), grace=30.0, slow_work=20.0, in_phase=_running),
    PhaseCase("report waiting", ("success", "retry", "fail"), SEND_OPERATIONS, in_phase=_report_waiting),
    # The steps' messages nearly fill the queue's MaximumMessageSize: the link that hands a decided answer on must
    # still fit (it carries the answer, not the arguments no handler reads again).
    PhaseCase(
        "report waiting, messages near the queue's size limit",
        ("success", "retry", "fail"),
        SEND_OPERATIONS,
        max_message_bytes=4096,
        in_phase=_report_waiting,
    ),
    # SendMessage refused from the Retry on (t = 0) until 10 s after the drain cancels the delivery (t = 10): inside
    # SHUTDOWN_SETTLE_LIMIT, so the re-queue must be finished and the handler not run again (README: "the send and
    # the delete are finished even when a shutdown comes meanwhile (for up to 15 s)").
    PhaseCase(
        "re-queue, SQS back within the settle limit",
        ("retry", "success"),
        frozenset({"SendMessage"}),
        duration=SETTLED_WITHIN,
        in_phase=_requeue,
    ),
    PhaseCase(
        "re-queue, SQS refusing past the settle limit",
        ("retry", "success"),
        frozenset({"SendMessage"}),
        errors=frozenset({REQUEUE_GAVE_UP}),
        window=Window(
            "retry",
            None,
            "README 'What is not guaranteed' 2: a continuation whose send SQS refuses for 15 s at SIGTERM runs again "
            "from the previous state",
        ),
        in_phase=_requeue,
    ),
    PhaseCase(
        "delete",
        ("success", "retry", "fail"),
        frozenset({"DeleteMessageBatch"}),
        errors=frozenset({DELETE_GAVE_UP}),
        in_phase=_delete,
    ),
    # The old link's delete refused from t = 0 until 10 s after the drain cancels the delivery: inside
    # SHUTDOWN_SETTLE_LIMIT, so the delete must be finished. The next link is due only after the old one would come
    # back (120 s): were the old link given up, the new replica would find its step still Executing and run it.
    PhaseCase(
        "delete, SQS back within the settle limit, next link due late",
        ("retry",),
        frozenset({"DeleteMessageBatch"}),
        duration=SETTLED_WITHIN,
        retry_delay=120.0,
        in_phase=_delete,
    ),
    PhaseCase(
        "delete, SQS refusing past the settle limit, next link due late",
        ("retry",),
        frozenset({"DeleteMessageBatch"}),
        retry_delay=120.0,
        errors=frozenset({DELETE_GAVE_UP}),
        window=Window(
            "retry",
            None,
            "README 'What is not guaranteed' 4: the delete of an old link fails and it comes back; another replica, "
            "which has not seen the later link, runs the handler again from the older state",
        ),
        in_phase=_delete,
    ),
)


def without_a_shared_key(phase: PhaseCase) -> PhaseCase:
    """``phase`` with a key per replica (none configured). Each link w1 sent is a fresh delivery to w2, so a handler
    may run once more from the start (README, 'What is not guaranteed' 6), besides the phase's own window; every
    step must still be answered once, as its handler decided, with nothing left in the queue. Where w1 hands
    answers on, w2 decides each again, with the arguments the step was started with (a link that would not fit with
    them is not sent: the message comes back)."""
    hands_on = phase.in_phase is _report_waiting
    errors = phase.errors | ({HAND_ON_FAILED} if hands_on and phase.max_message_bytes else set())
    return replace(
        phase,
        name=f"{phase.name}, no shared key",
        shared_key=False,
        errors=errors,
        in_phase=_decided_again if hands_on else phase.in_phase,
    )


#: Every phase again with a key per replica.
KEYLESS_PHASES = tuple(without_a_shared_key(phase) for phase in PHASES)


async def scenario(world: World, phase: PhaseCase) -> None:
    world.use(
        Injector(
            phase.operations,
            unavailable,
            world.now,
            world.trace,
            duration=phase.duration,
            hang=phase.hang,
        )
    )
    if phase.retry_delay is not None:
        world.retry_delay = phase.retry_delay
    if phase.slow_work is not None:
        world.slow_work = phase.slow_work
    world.shared_key = phase.shared_key
    padding = 0
    if phase.max_message_bytes is not None:
        world.queue.max_message_bytes = phase.max_message_bytes
        padding = phase.max_message_bytes - PADDING_ROOM
    world.start_steps(phase.kinds, padding)
    first = world.new_replica()
    await world.drive(first, stop_after=SHUTDOWN_AT)
    await world.shut_down(first, phase.grace)
    second = world.new_replica()
    world.injector.clear()
    await world.drive(second)


def check(world: World, phase: PhaseCase, logs: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = [*world.violations, *phase.in_phase(world)]
    for token, kind in world.kinds.items():
        step, name = world.step(token), f"step {short(token)} ({kind})"
        requests = {answer.request for answer in step.applied}
        if len(requests) != 1 or step.conflicts:
            problems.append(f"{name}: {len(requests)} distinct answers applied, {len(step.conflicts)} refused")
        if not answered_as_decided(step, kind):
            problems.append(f"{name}: answered {step.outcome}, decided {decided(kind)}")
        calls = world.calls_of(token)
        for state in states_of(kind):
            done = [call for call in calls if call.state == state and call.completed]
            window = phase.window
            allowed = 2 if window is not None and (window.kind, window.state) == (kind, state) else 1
            # Without a shared key, a link w1 sent is a fresh delivery to w2: once more on each later replica, at most.
            least, most = (allowed, allowed) if phase.shared_key else (1, allowed + len(world.replicas) - 1)
            if not least <= len(done) <= most:
                runs = ", ".join(f"{c.replica} at {c.started:.1f}s ({c.end})" for c in done)
                expected = allowed if phase.shared_key else f"{least} to {most}"
                problems.append(
                    f"{name}: handler completed {len(done)} times for state {state} (expected {expected}): {runs}"
                )
        strays = {call.state for call in calls} - states_of(kind)
        if strays:
            problems.append(f"{name}: handler called with unexpected states {strays}")
    problems += [
        f"{d.message_id} (step {short(d.token)} link {d.link}) deleted at {d.at:.1f}s while its step waited unanswered"
        for d in world.deletions
    ]
    if world.queue.live():
        problems.append(f"messages left: {[m.message_id for m in world.queue.live()]}")
    errors = {str(e.get("event")) for e in logs if e.get("log_level") in ("error", "critical")}
    if errors - phase.errors:
        problems.append(f"unexpected error-level log lines: {sorted(errors - phase.errors)}")
    return problems


ALL_PHASES = PHASES + KEYLESS_PHASES


@pytest.mark.parametrize(
    "phase", ALL_PHASES, ids=[phase.name.replace(" ", "-").replace(",", "") for phase in ALL_PHASES]
)
def test_shutdown_in_phase(phase: PhaseCase) -> None:
    with structlog.testing.capture_logs() as logs:
        try:
            world, _ = run_world(lambda w: scenario(w, phase), seed=phase.name)
        except Hang as hang:
            pytest.fail(f"shutdown while {phase.name}: HANG\n{hang}")
    problems = check(world, phase, logs)
    if problems:
        errors = [f"{e.get('event')} {e.get('error', '')}" for e in logs if e.get("log_level") == "error"]
        detail = "\n".join(f"  - {problem}" for problem in problems)
        pytest.fail(
            f"shutdown while {phase.name}:\n{detail}\nerror-level log lines: {errors}\ntrace:\n{world.trace.tail(120)}",
            pytrace=False,
        )
    if phase.window is not None:
        NOTES.append(
            f"shutdown while {phase.name}: the {phase.window.kind} handler ran again for state {phase.window.state} "
            f"({phase.window.where})"
        )
