"""What the daemon tells its observers: lifecycle events, published to the listeners registered at assembly.

The daemon's parts publish; metrics (:mod:`worker.metrics`), the stop summary (:class:`Tally`) and tracing
(:mod:`worker.tracing`) listen. A listener is any callable taking an :class:`Event`; it runs synchronously, in the
task that published, and must be quick. A listener that raises is logged once per event type and otherwise ignored:
observing never changes what the daemon does.

A listener may also offer ``span(event)``, returning a context manager that wraps the work an event starts
(a delivery, a handler call): :meth:`Events.span` enters every listener's, so tracing can make that work's span
current while it runs. No event carries a callback token.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from callback_worker.worker.logs import get_logger

log = get_logger("worker.events")


class Event:
    """Base of every event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class DeliveryStarted(Event):
    """A received message enters the dispatcher (its span covers the whole delivery)."""

    message_id: str
    receive_count: int


@dataclass(frozen=True, slots=True)
class DeliveryIdentified(Event):
    """The delivery's body parsed: which pipeline, execution and message status it is for."""

    pipeline: str
    execution_id: str
    status: str
    attempt: int
    link: int


@dataclass(frozen=True, slots=True)
class StepIdentified(Event):
    """SageMaker named the delivery's step (token verification or step context)."""

    step_name: str


@dataclass(frozen=True, slots=True)
class HandlerCall(Event):
    """A handler call begins (its span covers the call)."""

    handler: str
    attempt: int


@dataclass(frozen=True, slots=True)
class HandlerFinished(Event):
    """A handler call ended, however it ended."""

    handler: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Settled(Event):
    """The delivery's outcome is stored (answered, re-queued, kept or dropped); its slot is free, its delete follows."""

    phase: str


@dataclass(frozen=True, slots=True)
class DeliveryEnded(Event):
    """The delivery is done here; ``phase`` is how it settled (``None``: it was cancelled by a shutdown)."""

    message_id: str
    phase: str | None


@dataclass(frozen=True, slots=True)
class Noted(Event):
    """Something the daemon counts happened: ``received``, ``joined``, ``malformed``, ``continued``, ``crashed``,
    ``stopped``, ``stop_messages``, ``already_done``, ``unknown_token``, ``success``, ``failure``, ``rejected``,
    ``unauthenticated``."""

    what: str


@dataclass(frozen=True, slots=True)
class Reported(Event):
    """A report to SageMaker ended: ``outcome`` is ``success`` or ``failure``, ``result`` the report's result."""

    outcome: str
    result: str


@dataclass(frozen=True, slots=True)
class ReportStarted(Event):
    """An outcome is decided and on its way to SageMaker; ``pending`` reports (this one included) are under way."""

    pending: int


@dataclass(frozen=True, slots=True)
class ReportEnded(Event):
    """A report ended after ``seconds`` (rate-limiter waits and retries included): ``answered`` when SageMaker gave
    its answer, False when it was cut short (a shutdown)."""

    seconds: float
    answered: bool


@dataclass(frozen=True, slots=True)
class CallFailed(Event):
    """A call to AWS failed (it may be retried): ``service`` ``sagemaker`` or ``sqs``, ``operation`` the purpose."""

    service: str
    operation: str
    code: str


@dataclass(frozen=True, slots=True)
class StepLookup(Event):
    """One ``ListPipelineExecutionSteps`` or ``DescribePipelineExecution`` call."""

    operation: str


@dataclass(frozen=True, slots=True)
class LeaseCall(Event):
    """One ``ChangeMessageVisibilityBatch`` call renewing leases: the message ids it renewed, and those that failed
    and are tried again within the round."""

    renewed: tuple[str, ...]
    retried: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoopLagSampled(Event):
    """How late the event loop ran a sleep that was due, in seconds."""

    seconds: float


Listener = Callable[[Event], None]


@runtime_checkable
class SpanListener(Protocol):
    """A listener that also wraps the work some events start."""

    def __call__(self, event: Event) -> None: ...

    def span(self, event: Event) -> contextlib.AbstractContextManager[object] | None: ...


class Events:
    """The publisher: every part of one worker publishes here; listeners subscribe at assembly."""

    def __init__(self, listeners: tuple[Listener, ...] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._spans: list[SpanListener] = [item for item in listeners if isinstance(item, SpanListener)]
        self._failed: set[tuple[int, type[Event]]] = set()

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if isinstance(listener, SpanListener):
            self._spans.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - observing never changes what the daemon does
                self._report(listener, event)

    @contextlib.contextmanager
    def span(self, event: Event) -> Iterator[None]:
        """Publish ``event``, and run the block inside every span listener's context for it."""
        self.publish(event)
        if not self._spans:
            yield
            return
        with contextlib.ExitStack() as stack:
            for listener in self._spans:
                try:
                    context = listener.span(event)
                    if context is not None:
                        stack.enter_context(context)
                except Exception:  # noqa: BLE001 - as in publish
                    self._report(listener, event)
            yield

    def _report(self, listener: Listener, event: Event) -> None:
        key = (id(listener), type(event))
        if key not in self._failed:
            self._failed.add(key)
            log.exception(
                "an event listener failed; its later failures on this event are not logged",
                listener=repr(listener),
                event_type=type(event).__name__,
            )


#: Publishes to nobody: the default of parts built on their own (tests, tools).
NO_EVENTS = Events()


class Tally(Counter[str]):
    """Counts :class:`Noted` events by name (and reports by ``(outcome, result)`` in :attr:`reports`): the figures
    of the "worker stopped" line, and what tests read."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: Counter[tuple[str, str]] = Counter()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Noted):
            self[event.what] += 1
        elif isinstance(event, Reported):
            self.reports[(event.outcome, event.result)] += 1
        elif isinstance(event, LeaseCall):
            self["lease_calls"] += 1
            self["lease_renewals"] += len(event.renewed)
            self["lease_retries"] += bool(event.retried)
        elif isinstance(event, StepLookup):
            self["step_lookups"] += 1
        elif isinstance(event, ReportStarted):
            self["reports_started"] += 1
        elif isinstance(event, ReportEnded):
            self["reports_ended"] += 1


def on(kind: type[Event], action: Callable[[Event], None]) -> Listener:
    """A listener calling ``action`` for events of one type only."""

    def listener(event: Event) -> None:
        if isinstance(event, kind):
            action(event)

    return listener
