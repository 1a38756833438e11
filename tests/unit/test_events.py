"""The event publisher: listeners hear every event in order, a failing listener neither stops the others nor the
publisher (and is logged once per event type), and span listeners wrap the work an event starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import structlog

from callback_worker.worker.events import (
    CallFailed,
    Event,
    Events,
    HandlerCall,
    LeaseCall,
    Noted,
    Reported,
    StepLookup,
    Tally,
    on,
)


def test_listeners_hear_every_event_in_order() -> None:
    heard: list[tuple[str, Event]] = []
    events = Events((lambda event: heard.append(("a", event)),))
    events.subscribe(lambda event: heard.append(("b", event)))
    first, second = Noted("received"), StepLookup("ListPipelineExecutionSteps")
    events.publish(first)
    events.publish(second)
    assert heard == [("a", first), ("b", first), ("a", second), ("b", second)]


def test_a_failing_listener_is_logged_once_per_event_type_and_the_others_still_hear() -> None:
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    events = Events((broken, heard.append))
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            events.publish(Noted("received"))
        events.publish(StepLookup("DescribePipelineExecution"))
    assert len(heard) == 4
    failures = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["event_type"] for entry in failures] == ["Noted", "StepLookup"]


def test_on_filters_by_event_type() -> None:
    heard: list[Event] = []
    events = Events((on(Reported, heard.append),))
    events.publish(Noted("received"))
    events.publish(Reported("success", "accepted"))
    assert heard == [Reported("success", "accepted")]


def test_the_tally_counts_what_the_stop_line_reports() -> None:
    tally = Tally()
    events = Events((tally,))
    for event in (
        Noted("received"),
        Noted("received"),
        Reported("failure", "accepted"),
        LeaseCall(renewed=("m1", "m2"), retried=()),
        LeaseCall(renewed=(), retried=("m3",)),
        StepLookup("ListPipelineExecutionSteps"),
        CallFailed("sagemaker", "report", "ThrottlingException"),
    ):
        events.publish(event)
    assert dict(tally) == {
        "received": 2,
        "lease_calls": 2,
        "lease_renewals": 2,
        "lease_retries": 1,
        "step_lookups": 1,
    }
    assert tally.reports == {("failure", "accepted"): 1}


class Spans:
    def __init__(self) -> None:
        self.log: list[str] = []

    def __call__(self, event: Event) -> None:
        self.log.append(f"event {type(event).__name__}")

    @contextlib.contextmanager
    def _span(self, name: str) -> Iterator[None]:
        self.log.append(f"enter {name}")
        try:
            yield
        finally:
            self.log.append(f"exit {name}")

    def span(self, event: Event) -> contextlib.AbstractContextManager[object] | None:
        return self._span(event.handler) if isinstance(event, HandlerCall) else None


def test_a_span_listener_wraps_the_work_even_when_it_raises() -> None:
    spans = Spans()
    events = Events((spans,))

    def work() -> None:
        with events.span(HandlerCall("echo", 1)):
            spans.log.append("work")
            raise ValueError("handler bug")

    with pytest.raises(ValueError, match="handler bug"):
        work()
    assert spans.log == ["event HandlerCall", "enter echo", "work", "exit echo"]
