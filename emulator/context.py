"""What expressions read while an execution runs: parameters, step outputs and properties, documents.

:class:`ExecutionContext` is the :class:`emulator.expressions.Context` of one execution at one moment.
A ``Std:JsonGet`` of an S3 document not fetched yet raises :class:`NeedDocument`; the engine fetches it
(asynchronously) into the execution's document cache and evaluates again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from callback_worker.emulator.errors import EmulatorError
from callback_worker.emulator.expressions import EvaluationError
from callback_worker.emulator.state import Execution, StepStatus
from callback_worker.emulator.steps import StepKind, StepSpec
from callback_worker.emulator.stubs import StubConfig
from callback_worker.emulator.values import JSONValue, Scalar, parse_typed


class NeedDocument(EmulatorError):
    """The JSON document at ``uri`` must be fetched before the expression can be evaluated."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri


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
    ) -> None:
        self._execution = execution
        self._now = now
        self._stubs = stubs or StubConfig()
        self._documents = documents or {}

    def parameter(self, name: str) -> Scalar:
        return self._execution.parameters[name]

    def step_output(self, step: str, output: str) -> JSONValue:
        run = self._execution.steps.get(step)
        if run is not None and run.spec.kind is StepKind.STUB:
            return self.step_property(step, f"OutputParameters['{output}']")
        if run is None or output not in run.typed_outputs:
            raise EvaluationError(f"step {step!r} has no value for output {output!r}")
        return run.typed_outputs[output]

    def step_property(self, step: str, prop: str) -> JSONValue:
        run = self._execution.steps.get(step)
        if run is None or run.status is not StepStatus.SUCCEEDED:
            raise EvaluationError(f"Steps.{step}.{prop} is read, but step {step!r} has not succeeded")
        if run.spec.kind is StepKind.CONDITION:
            return run.outcome
        try:
            return self._stubs.value(step, prop)
        except KeyError:
            raise EvaluationError(
                f"Steps.{step}.{prop} has no value: step {step!r} is a stubbed {run.spec.type} step; "
                f"give {prop!r} under {step!r} in the stub values file"
            ) from None

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

    A problem is a declared output that is missing or does not parse as its declared type (a Float of
    ``1e999`` included: JSON has no infinity); outputs the step does not declare are neither typed nor a problem.
    """
    given = {item["Name"]: item["Value"] for item in outputs}
    typed: dict[str, Scalar] = {}
    problems: list[str] = []
    for output in spec.outputs:
        if output.name not in given:
            problems.append(f"output parameter {output.name!r} ({output.type.value}) was not provided")
            continue
        try:
            typed[output.name] = parse_typed(given[output.name], output.type)
        except ValueError:
            problems.append(
                f"output parameter {output.name!r}: {given[output.name]!r} is not a valid {output.type.value}"
            )
    return typed, problems
