"""The demo prints a poll's step changes in the order they happened, not in the listing's order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from callback_worker.demo import _happened_at

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def step(name: str, status: str, start: float, end: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"StepName": name, "StepStatus": status, "StartTime": T0 + timedelta(seconds=start)}
    if end is not None:
        entry["EndTime"] = T0 + timedelta(seconds=end)
    return entry


def test_an_upstream_end_comes_before_the_downstream_changes_it_allowed() -> None:
    # ListPipelineExecutionSteps lists newest first: the downstream step before the upstream one.
    listing = [
        step("Train", "Succeeded", 1.0, 2.0),
        step("Gate", "Succeeded", 1.0, 1.0),
        step("Prepare", "Succeeded", 0.0, 1.0),
    ]
    assert [entry["StepName"] for entry in sorted(listing, key=_happened_at)] == ["Prepare", "Gate", "Train"]


def test_a_running_step_is_placed_at_its_start() -> None:
    listing = [step("Train", "Executing", 1.0), step("Prepare", "Succeeded", 0.0, 1.0)]
    assert [entry["StepName"] for entry in sorted(listing, key=_happened_at)] == ["Prepare", "Train"]
