"""The life of one delivery of a callback token: a small state machine, every transition named.

::

                  ┌──────────── malformed, no token ─────────────────────────────────► KEPT
                  │      ┌───── copy of a token already settled here / stale link ───► DROPPED
                  │      │  ┌── another delivery of the token leads here ──► JOINED (the leader's disposition)
    RECEIVED ─────┴──────┴──┴──► VERIFYING ──── unknown token / step finished ───────► DROPPED
        │  Stopping message         │  └─────── not due yet ──► WAITING ─── re-queued ──► REQUEUED
        │                           │ step Executing, due            ▲   └─ re-queue failed ─┐
        │                           ▼                                │                       ▼
        │                        RUNNING ── Retry / crash retried ───┘                   ANSWERING ──► ANSWERED | KEPT
        │                           │                                        (handed on: shutdown, 12 h) ──► REQUEUED
        │                           │ └──── outcome (Success, Fail, crash, 12 h) ───────────▲
        │                           └────── stopped (here or elsewhere) ──┐                 │
        └──────────────────────────────────────────────────────────────► STOPPING ─────────┘ (or STOPPED)

    settled (ANSWERED | STOPPED | REQUEUED | DROPPED | JOINED | KEPT)
        ── DELETE ──► ACKNOWLEDGED (message deleted)         ── KEEP ──► LEFT (reappears after its visibility)

One delivery per token *leads* on a replica: later deliveries of the same token (an SQS duplicate, a redelivery, a
stale continuation link) join it and share its disposition; a later link of the leader's own chain waits for it and
then leads. Before a handler first runs and before every continuation wake, SageMaker confirms the step is still
``Executing`` (``CALLBACK_WORKER_VERIFY_TOKENS``). One Stopping delivery per token leads the stop on a replica (copies
join it): a leader still verifying never starts its handler, a running one is cancelled, and the stop hook runs once
in that replica's stop, with the newest state the leader knew, before the step is answered. A continuation that
wakes later to find its step stopped runs the hook again with its own state: hooks must be idempotent.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from callback_worker.worker.handler import CallbackContext, Handler, HandlerResult, JSONValue
from callback_worker.worker.lease import Lease
from callback_worker.worker.message import CallbackMessage
from callback_worker.worker.outcome import Outcome
from callback_worker.worker.queue import ReceivedMessage
from callback_worker.worker.step_context import StepInfo


class Phase(enum.Enum):
    """Where a delivery is in its life."""

    RECEIVED = "received"
    VERIFYING = "verifying"
    RUNNING = "running"
    WAITING = "waiting"
    STOPPING = "stopping"
    ANSWERING = "answering"
    # settled
    ANSWERED = "answered"
    STOPPED = "stopped"
    REQUEUED = "requeued"
    DROPPED = "dropped"
    JOINED = "joined"
    KEPT = "kept"
    # after the disposition
    ACKNOWLEDGED = "acknowledged"
    LEFT = "left"


class Disposition(enum.Enum):
    """What becomes of the message once its delivery is settled."""

    DELETE = "delete"
    KEEP = "keep"


SETTLED = frozenset({Phase.ANSWERED, Phase.STOPPED, Phase.REQUEUED, Phase.DROPPED, Phase.JOINED, Phase.KEPT})

#: Every transition a delivery may take; anything else is a bug and raises.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.RECEIVED: frozenset(
        {Phase.VERIFYING, Phase.STOPPING, Phase.ANSWERING, Phase.DROPPED, Phase.JOINED, Phase.KEPT}
    ),
    Phase.VERIFYING: frozenset(
        {Phase.RUNNING, Phase.WAITING, Phase.STOPPING, Phase.STOPPED, Phase.ANSWERING, Phase.DROPPED, Phase.KEPT}
    ),
    Phase.RUNNING: frozenset({Phase.WAITING, Phase.ANSWERING, Phase.STOPPING, Phase.STOPPED}),
    Phase.WAITING: frozenset({Phase.REQUEUED, Phase.ANSWERING, Phase.KEPT}),
    Phase.STOPPING: frozenset({Phase.ANSWERING, Phase.STOPPED, Phase.DROPPED}),
    Phase.ANSWERING: frozenset({Phase.ANSWERED, Phase.KEPT, Phase.REQUEUED}),
    **{phase: frozenset({Phase.ACKNOWLEDGED, Phase.LEFT}) for phase in SETTLED},
    Phase.ACKNOWLEDGED: frozenset(),
    Phase.LEFT: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A delivery was asked to move where its life does not go: a bug in the worker."""


@dataclass(frozen=True, slots=True)
class StopCause:
    """Why a running handler was cancelled: a Stopping message here, or SageMaker's step status seen elsewhere."""

    step_status: str = "Stopping"
    """The step's status when the cancel was decided (``Stopping``, ``Stopped``, ``Succeeded``, ``Failed``)."""
    by_message: bool = False
    """A Stopping message handled on this replica asked for it; that message's delivery runs the stop hook and
    answers the step."""

    @property
    def needs_answer(self) -> bool:
        """Only a step still ``Stopping`` waits for an answer; the others already have one."""
        return self.step_status == "Stopping" and not self.by_message

    @property
    def runs_stop_hook(self) -> bool:
        return self.step_status in ("Stopping", "Stopped") and not self.by_message


@dataclass(eq=False, slots=True)
class Delivery:
    """One delivery of one message, from receipt to disposition."""

    received: ReceivedMessage
    lease: Lease = field(init=False)
    """Set by the dispatcher as it takes the delivery (the lease calls :meth:`exhaust_lease` if it runs out)."""
    phase: Phase = Phase.RECEIVED
    message: CallbackMessage | None = None
    context: CallbackContext | None = None
    """The handler's context, once routed (the stop hook gets it, continuation state included)."""
    handler: Handler | None = None
    task: asyncio.Task[HandlerResult] | None = None
    started: float = 0.0
    """Monotonic time the handler started."""
    stop_cause: StopCause | None = None
    """Set once a stop was asked for; a delivery still verifying never starts its handler."""
    lease_exhausted: bool = False
    lease_ending: asyncio.Event = field(default_factory=asyncio.Event)
    """Set with ``lease_exhausted``: a report still waiting for SageMaker hands its answer on at once."""
    listing_mark: int = 0
    """Listings of the token's execution started up to this delivery's receipt: it trusts only later ones."""
    decided: Outcome | None = None
    """The answer this delivery decided and is reporting (what a hand-off carries on)."""
    latest_state: JSONValue = None
    """The newest state of the token's work: the handler's last ``Retry`` state once it returned one (re-queued or
    cut short by a stop), else the state it was called with. The stop hook gets it."""
    hook_ran: bool = False
    """The stop hook ran in this delivery."""
    settled_as: Phase | None = None
    """The settled phase this delivery reached (kept once it moves on to ACKNOWLEDGED or LEFT)."""
    history: list[Phase] = field(default_factory=list)
    interrupted: bool = False
    """A shutdown arrived while the outcome was being stored; storing it was finished first."""
    over: bool = False
    """The delivery's handling has ended (settled, or cut short by a shutdown)."""
    _done: asyncio.Future[Disposition] | None = None

    def enter(self, phase: Phase) -> None:
        """Move to ``phase``; raises :class:`IllegalTransition` if the lifecycle does not allow it."""
        if phase not in TRANSITIONS[self.phase]:
            raise IllegalTransition(f"{self.phase.value} -> {phase.value}")
        self.history.append(self.phase)
        self.phase = phase
        if phase in SETTLED:
            self.settled_as = phase

    @property
    def settled(self) -> bool:
        return self.phase in SETTLED

    @property
    def disposition(self) -> Disposition:
        return Disposition.KEEP if self.phase in (Phase.KEPT, Phase.LEFT) else Disposition.DELETE

    def abandon(self) -> None:
        """The per-message fence caught a bug: keep the message, whatever phase it was in."""
        self.history.append(self.phase)
        self.phase = self.settled_as = Phase.KEPT

    def start(self, task: asyncio.Task[HandlerResult], now: float) -> None:
        """The handler runs, as ``task``, from monotonic time ``now``."""
        self.enter(Phase.RUNNING)
        self.task, self.started = task, now

    def request_stop(self, cause: StopCause) -> None:
        """Stop this delivery's handler (if it runs) or keep it from starting (if it has not yet)."""
        if self.stop_cause is None:
            self.stop_cause = cause
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def exhaust_lease(self) -> None:
        self.lease_exhausted = True
        self.lease_ending.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def finished(self) -> Disposition:
        """Wait until this delivery is settled (or ended without settling: a shutdown, which keeps it)."""
        if self.over:
            return self._outcome()
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._done)

    def finish(self) -> None:
        """Wake whoever waits in :meth:`finished`."""
        self.over = True
        if self._done is not None and not self._done.done():
            self._done.set_result(self._outcome())

    def _outcome(self) -> Disposition:
        return self.disposition if self.settled or self.phase in (Phase.ACKNOWLEDGED, Phase.LEFT) else Disposition.KEEP


def context_for(message: CallbackMessage, name: str, info: StepInfo, message_id: str) -> CallbackContext:
    """The handler's view of a delivery: the message, the handler's name, and what SageMaker said of the step."""
    return CallbackContext(
        token=message.token,
        pipeline_execution_arn=message.pipeline_execution_arn,
        pipeline_name=message.pipeline_name,
        execution_id=message.execution_id,
        arguments=message.arguments,
        handler_name=name,
        message_id=message_id,
        attempt=message.continuation.attempt,
        state=message.continuation.state,
        continuations=message.continuation.continuations,
        step_name=info.step_name,
        experiment_name=info.experiment_name,
        trial_name=info.trial_name,
    )
