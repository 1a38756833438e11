"""What expressions read while an execution runs: parameters, step outputs and properties, documents.

:class:`ExecutionContext` is the :class:`emulator.expressions.Context` of one execution at one moment.
A ``Std:JsonGet`` of an S3 document not fetched yet raises :class:`NeedDocument`; the engine fetches it
(asynchronously) into the execution's document cache and evaluates again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from callback_worker.emulator.errors import EmulatorError
from callback_worker.emulator.expressions import EvaluationError
from callback_worker.emulator.jsonpath import select
from callback_worker.emulator.state import Execution, Iteration, StepStatus
from callback_worker.emulator.steps import StepKind, StepSpec
from callback_worker.emulator.stubs import StubConfig
from callback_worker.emulator.values import JSONValue, Scalar, load_json, parse_typed


class NeedDocument(EmulatorError):
    """The JSON document at ``uri`` must be fetched before the expression can be evaluated."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri


_OUTPUT = re.compile(r"OutputParameters\[(['\"])(.+?)\1\]")
_ITERATION_OUTPUT = re.compile(r"IterationOutputs\[([0-9]+)\]\.([A-Za-z0-9\-_]+)\.(.+)")


def iso(timestamp: float) -> str:
    """``2024-01-02T03:04:05.678Z``: the text of ``Execution.StartDateTime`` and ``CurrentDateTime``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ExecutionContext:
    """Values that expressions read, for one execution at one moment."""

    def __init__(
        self,
        execution: Execution,
        now: float,
        stubs: StubConfig | None = None,
        documents: Mapping[str, JSONValue] | None = None,
        iteration: Iteration | None = None,
    ) -> None:
        self._execution = execution
        self._now = now
        self._stubs = stubs or StubConfig()
        self._documents = documents or {}
        self._iteration = iteration

    def _run_name(self, step: str) -> str:
        """Inside a ForEach child step, a body sibling's name means the sibling's child of the same iteration."""
        iteration = self._iteration
        return f"{step}-{iteration.index}" if iteration is not None and step in iteration.siblings else step

    def parameter(self, name: str) -> Scalar:
        return self._execution.parameters[name]

    def step_output(self, step: str, output: str) -> JSONValue:
        step = self._run_name(step)
        run = self._execution.steps.get(step)
        if run is not None and run.spec.kind is StepKind.STUB:
            return self.step_property(step, f"OutputParameters['{output}']")
        if run is None or output not in run.typed_outputs:
            raise EvaluationError(f"step {step!r} has no value for output {output!r}")
        return run.typed_outputs[output]

    def step_property(self, step: str, prop: str) -> JSONValue:
        step = self._run_name(step)
        run = self._execution.steps.get(step)
        if run is None or run.status is not StepStatus.SUCCEEDED:
            raise EvaluationError(f"Steps.{step}.{prop} is read, but step {step!r} has not succeeded")
        if run.spec.kind is StepKind.CONDITION:
            return run.outcome
        if run.spec.kind is StepKind.FOR_EACH:
            return self._for_each_property(step, run.metadata or {}, prop)
        stub_name = run.spec.name if run.iteration is None else run.spec.name.rsplit("-", 1)[0]
        try:
            return self._stubs.value(stub_name, prop)
        except KeyError:
            if prop in run.properties:
                return run.properties[prop]
            raise EvaluationError(
                f"Steps.{step}.{prop} has no value: step {step!r} is a stubbed {run.spec.type} step; "
                f"give {prop!r} under {step!r} in the stub values file"
            ) from None

    def member(self, step: str, member: str) -> JSONValue:
        """``Steps.<step>.<member>``: an output (``OutputParameters['x']``) or another property."""
        output = _OUTPUT.fullmatch(member)
        return self.step_output(step, output[2]) if output else self.step_property(step, member)

    def _for_each_property(self, step: str, metadata: Mapping[str, JSONValue], prop: str) -> JSONValue:
        summary = metadata.get("ForEach")
        summary = summary if isinstance(summary, dict) else {}
        if prop in summary:
            return summary[prop]
        if match := _ITERATION_OUTPUT.fullmatch(prop):
            return self.member(f"{match[2]}-{match[1]}", match[3])
        selector = summary.get("Selector")
        if prop.startswith("Selected.") and isinstance(selector, dict):
            return self.member(f"{selector['StepName']}-{selector['Index']}", prop.removeprefix("Selected."))
        raise EvaluationError(f"Steps.{step}.{prop} has no value")

    def current_item(self, path: str) -> JSONValue:
        if self._iteration is None:
            raise EvaluationError("ForEach.CurrentItem is read outside a ForEach body step")
        item = self._iteration.item
        if not path:
            return item
        if isinstance(item, str):
            try:
                item = load_json(item)
            except ValueError:
                raise EvaluationError(f"ForEach.CurrentItem{path}: the item {item!r} is not a JSON object") from None
        try:
            return select(item, path.removeprefix("."))
        except (KeyError, IndexError, TypeError) as error:
            raise EvaluationError(f"ForEach.CurrentItem{path}: {error}") from None

    def json_document(self, uri: str) -> JSONValue:
        if uri not in self._documents:
            raise NeedDocument(uri)
        return self._documents[uri]

    def execution_variable(self, name: str) -> str:
        execution = self._execution
        variables = {
            "PipelineExecutionId": execution.id,
            "PipelineExecutionArn": execution.arn,
            "PipelineName": execution.pipeline.name,
            "PipelineArn": execution.pipeline.arn,
            "StartDateTime": iso(execution.creation_time),
            "CurrentDateTime": iso(self._now),
        }
        return variables[name]

    def experiment_property(self, name: str) -> str:
        if self._execution.experiment is None:
            raise EvaluationError(f"PipelineExperimentConfig.{name} is read, but the pipeline has none")
        return self._execution.experiment[name]


def check_outputs(spec: StepSpec, outputs: Sequence[dict[str, str]]) -> tuple[dict[str, Scalar], list[str]]:
    """Type the reported outputs by the step's declarations: ``(typed values, problems)``.

    A problem is a declared output that does not parse as its declared type (a Float of ``1e999`` included: JSON
    has no infinity). A declared output the answer leaves out is not one: as in the service (its API takes 0 to 50
    outputs, and the SDK declares outputs "that can be provided when completing a callback"), the step succeeds
    without it, and a step that reads it fails naming it. Outputs the step does not declare are neither typed nor a
    problem.
    """
    given = {item["Name"]: item["Value"] for item in outputs}
    typed: dict[str, Scalar] = {}
    problems: list[str] = []
    for output in spec.outputs:
        if output.name not in given:
            continue
        try:
            typed[output.name] = parse_typed(given[output.name], output.type)
        except ValueError:
            problems.append(
                f"output parameter {output.name!r}: {given[output.name]!r} is not a valid {output.type.value}"
            )
    return typed, problems
