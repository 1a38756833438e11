"""Selective executions: ``StartPipelineExecution`` with a ``SelectiveExecutionConfig``.

As the API reference and the developer guide ("Selective execution of pipeline steps") describe it: only the
``SelectedSteps`` run; every step on a path between two selected steps must be selected too; the steps they
depend on (directly or not) are not run again but taken from ``SourcePipelineExecutionArn``, an execution of
the same pipeline that is ``Succeeded`` or ``Failed`` and in which they succeeded — they are listed as
``Succeeded`` with their source run's times, outputs and metadata and ``SelectiveExecutionResult`` naming that
execution; steps after or beside the selected ones do not run. Without a source, the selected steps may depend
on no unselected step. ``DescribePipelineExecution`` answers the ``SelectiveExecutionConfig`` given. Each broken
rule is a ``ValidationException`` naming the step (an unknown source execution: ``ResourceNotFound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from callback_worker.emulator.definition import PipelineSpec
from callback_worker.emulator.errors import ValidationError
from callback_worker.emulator.foreach import child_name
from callback_worker.emulator.state import Execution, ExecutionStatus, Pipeline, StepRun, StepStatus


@dataclass(frozen=True)
class Selection:
    """What a selective execution runs (``selected``) and what it takes from its source (``taken``)."""

    config: dict[str, Any]
    selected: frozenset[str]
    taken: tuple[StepRun, ...]


def plan_selection(
    spec: PipelineSpec, config: Mapping[str, Any], source: Execution | None, pipeline: Pipeline
) -> Selection:
    """Check a ``SelectiveExecutionConfig`` against the definition and the source execution; what to run."""
    names = [str(item["StepName"]) for item in config.get("SelectedSteps", [])]
    known = {step.name: step.depends_on for step in spec.steps}
    for name in names:
        if name not in known:
            raise ValidationError(f"SelectiveExecutionConfig: step '{name}' is not a step of the pipeline")
    selected = frozenset(names)
    ancestors = {name: _ancestors(name, known) for name in known}
    for name in set(known) - selected:
        upstream = any(name in ancestors[chosen] for chosen in selected)
        if upstream and any(chosen in ancestors[name] for chosen in selected):
            raise ValidationError(
                f"SelectiveExecutionConfig: step '{name}' lies between selected steps, so it must be selected too"
            )
    needed = sorted(set().union(*(ancestors[chosen] for chosen in selected)) - selected)
    if needed and source is None:
        raise ValidationError(
            "SelectiveExecutionConfig: SourcePipelineExecutionArn is required: the selected steps depend on "
            f"steps that are not selected ({', '.join(needed)})"
        )
    taken = _taken(needed, source, pipeline) if source is not None else ()
    return Selection(dict(config), selected, taken)


def _ancestors(name: str, known: Mapping[str, frozenset[str]]) -> frozenset[str]:
    found: set[str] = set()
    pending = list(known[name])
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(known.get(current, ()))
    return frozenset(found)


def _taken(needed: list[str], source: Execution, pipeline: Pipeline) -> tuple[StepRun, ...]:
    if source.pipeline is not pipeline:
        raise ValidationError(
            f"SelectiveExecutionConfig: {source.arn} is not an execution of pipeline '{pipeline.name}'"
        )
    if source.status not in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED):
        raise ValidationError(
            f"SelectiveExecutionConfig: the source execution {source.arn} is {source.status.value}; "
            "it must be Succeeded or Failed"
        )
    taken: list[StepRun] = []
    for name in needed:
        run = source.steps.get(name)
        if run is None or run.status is not StepStatus.SUCCEEDED:
            raise ValidationError(
                f"SelectiveExecutionConfig: step '{name}' did not succeed in the source execution {source.arn}"
            )
        taken.append(run)
        for body in run.spec.for_each.body if run.spec.for_each is not None else ():
            children = (source.steps.get(child_name(body.name, index)) for index in range(len(run.items or [])))
            taken += [child for child in children if child is not None]
    return tuple(replace(run, selective_source=source.arn, answer=None) for run in taken)
