"""ForEach steps at run time: one child step per item and body step, a concurrency cap, the summary.

A ForEach step first resolves its ``IterableItems`` (a list, or JSON text of a list; anything else fails the
step) and is ``Executing``; then, for each item (in order) and each body step, a child step called
``<body step>-<index>`` starts once the body siblings it depends on (in the same iteration) succeeded, at
most ``MaxConcurrency`` children running at once. Children are listed by ``ListPipelineExecutionSteps`` with
``IterationContext`` ``{"ParentStepName", "Index", "Item"}``; a child's failure does not keep the others from
running. Once no child runs and none can start, the ForEach step ends: ``Stopped`` if its execution is
stopping, ``Failed`` if a child failed, was stopped or could not start (its reason counting them: the service's
wording for this is not documented), else ``Succeeded`` — after its ``Selector`` picked the iteration whose
field is largest (``MaxBy``) or smallest (``MinBy``), the first among equals. ``Metadata.ForEach`` holds
``InputItemCount``, ``TotalStepCount`` (items times body steps), the succeeded, failed and stopped counts, the
final ``Status`` and the ``Selector`` result ``{"StepName": <body step>, "Index": <i>}``; the same names are
the step's properties (``Steps.<name>.SucceededStepCount``), beside ``IterationOutputs[<i>].<body step>.<member>``
and ``Selected.<member>``.

A retried ForEach step keeps the children that succeeded and runs the others again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from callback_worker.emulator.context import ExecutionContext
from callback_worker.emulator.expressions import EvaluationError
from callback_worker.emulator.state import Execution, Iteration, StepRun, StepStatus
from callback_worker.emulator.steps import ForEachSpec, StepKind, StepSpec
from callback_worker.emulator.values import JSONValue, load_json

#: ``start(execution, spec, iteration)`` starts a child step; ``finish(execution, run, status, reason)`` ends one.
StartChild = Callable[[Execution, StepSpec, Iteration], None]
Finish = Callable[[Execution, StepRun, StepStatus, "str | None"], None]


def child_name(body_step: str, index: int) -> str:
    """The name of the child of ``body_step`` for the item at ``index``."""
    return f"{body_step}-{index}"


def resolve_items(resolved: JSONValue) -> list[JSONValue]:
    """The items of an evaluated ``IterableItems``; :class:`EvaluationError` unless it is a list (or its JSON)."""
    items = resolved
    if isinstance(resolved, str):
        try:
            items = load_json(resolved)
        except ValueError:
            items = None
    if not isinstance(items, list):
        raise EvaluationError(f"IterableItems resolved to {resolved!r}, which is not a JSON list")
    return items


@dataclass
class ForEachDriver:
    """Starts the children of running ForEach steps and ends those steps."""

    start_child: StartChild
    finish: Finish
    clock: Callable[[], float]

    def advance(self, execution: Execution) -> None:
        """Start what children may start, then end the ForEach steps that are done."""
        for run in list(execution.steps.values()):
            if run.spec.kind is StepKind.FOR_EACH and run.running and run.items is not None:
                self._start_children(execution, run)
                self._settle(execution, run)

    def _children(self, execution: Execution, run: StepRun) -> Iterator[tuple[StepSpec, int, StepRun | None]]:
        spec = _spec(run)
        for index in range(len(run.items or [])):
            for body in spec.body:
                yield body, index, execution.steps.get(child_name(body.name, index))

    def _startable(self, execution: Execution, body: StepSpec, index: int) -> bool:
        needs = (execution.steps.get(child_name(name, index)) for name in body.depends_on)
        return all(need is not None and need.status is StepStatus.SUCCEEDED for need in needs)

    def _start_children(self, execution: Execution, run: StepRun) -> None:
        spec = _spec(run)
        siblings = frozenset(body.name for body in spec.body)
        for body, index, child in list(self._children(execution, run)):
            running = sum(1 for *_, other in self._children(execution, run) if other is not None and other.running)
            if running >= spec.max_concurrency or run.status is not StepStatus.EXECUTING:
                return
            fresh = child is None and execution.steps.get(child_name(body.name, index)) is None
            if fresh and self._startable(execution, body, index):
                item = (run.items or [])[index]
                self.start_child(execution, body, Iteration(run.spec.name, index, item, siblings))

    def _settle(self, execution: Execution, run: StepRun) -> None:
        children = list(self._children(execution, run))
        if any(child is not None and child.running for *_, child in children):
            return
        waiting = [(body, index) for body, index, child in children if child is None]
        if run.status is StepStatus.EXECUTING and any(self._startable(execution, *pending) for pending in waiting):
            return  # held back by the execution's parallelism; started when a step ends
        summary = _summary(run, [child for *_, child in children])
        run.metadata = {"ForEach": summary}
        if run.status is StepStatus.STOPPING:
            summary["Status"] = StepStatus.STOPPED.value
            self.finish(execution, run, StepStatus.STOPPED, None)
            return
        succeeded = sum(1 for *_, child in children if child is not None and child.status is StepStatus.SUCCEEDED)
        unfinished = len(children) - succeeded
        if unfinished:
            summary["Status"] = StepStatus.FAILED.value
            reason = f"{unfinished} of {len(children)} child steps did not succeed"
            self.finish(execution, run, StepStatus.FAILED, reason)
            return
        try:
            self._select(execution, run, summary)
        except EvaluationError as error:
            summary["Status"] = StepStatus.FAILED.value
            self.finish(execution, run, StepStatus.FAILED, f"Selector: {error}")
            return
        summary["Status"] = StepStatus.SUCCEEDED.value
        self.finish(execution, run, StepStatus.SUCCEEDED, None)

    def _select(self, execution: Execution, run: StepRun, summary: dict[str, JSONValue]) -> None:
        selector = _spec(run).selector
        if selector is None or not run.items:
            return
        pick, body, member = selector
        context = ExecutionContext(execution, self.clock())
        values = [_number(context.member(child_name(body, index), member)) for index in range(len(run.items))]
        best = max(values) if pick == "MaxBy" else min(values)
        summary["Selector"] = {"StepName": body, "Index": values.index(best)}


def _spec(run: StepRun) -> ForEachSpec:
    spec = run.spec.for_each
    if spec is None:
        raise TypeError(f"step {run.spec.name!r} is not a ForEach step")
    return spec


def _summary(run: StepRun, children: list[StepRun | None]) -> dict[str, JSONValue]:
    def count(status: StepStatus) -> int:
        return sum(1 for child in children if child is not None and child.status is status)

    return {
        "InputItemCount": len(run.items or []),
        "TotalStepCount": len(children),
        "SucceededStepCount": count(StepStatus.SUCCEEDED),
        "FailedStepCount": count(StepStatus.FAILED),
        "StoppedStepCount": count(StepStatus.STOPPED),
    }


def _number(value: JSONValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise EvaluationError(f"{value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise EvaluationError(f"{value!r} is not a number") from None
    if math.isnan(number):
        raise EvaluationError(f"{value!r} is not a number")
    return number
