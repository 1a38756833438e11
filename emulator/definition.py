"""Pipeline definitions: parse and check the ``PipelineDefinition`` JSON text of ``CreatePipeline``.

The accepted document follows the public pipeline definition schema and what the SageMaker Python SDK
generates::

    {"Version": "2020-12-01", "Metadata": {},
     "Parameters": [{"Name": "Size", "Type": "Integer", "DefaultValue": 5}],
     "PipelineExperimentConfig": {"ExperimentName": {"Get": "Execution.PipelineName"},
                                  "TrialName": {"Get": "Execution.PipelineExecutionId"}},
     "Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": "https://...",
                "Arguments": {"size": {"Get": "Parameters.Size"}},
                "OutputParameters": [{"OutputName": "n", "OutputType": "Integer"}]}]}

``MlflowConfig`` (written by SDK v3, ``null`` unless ``Pipeline(mlflow_config=...)``) is ``null`` or
``{"MlflowResourceArn": ..., "MlflowExperimentName": ...}``: ``MlflowResourceArn`` is required (an empty object
is refused), ``MlflowExperimentName`` may be left out or ``null`` (SDK v3's evaluation pipelines write the ARN
alone); values are strings or expressions of parameters and execution variables. An execution reports it as
``MLflowConfig`` in ``DescribePipelineExecution``, the experiment name replaced by ``StartPipelineExecution``'s
``MlflowExperimentName`` when given.
``Version`` may be left out (the schema does not require it); when present it is ``2020-12-01``.
``Metadata`` maps names (``[A-Za-z0-9-_]{1,128}``) to strings of at most 1024 characters. Steps are
described in :mod:`emulator.steps`; parameters in :mod:`emulator.parameters`. Every ``Get`` must resolve
(declared parameters; declared outputs of Callback steps; ``Outcome`` of Condition steps; any property of a
stubbed step); a step reference is also a dependency; ``DependsOn`` names must exist; the dependency graph
must be acyclic. Without a ``PipelineExperimentConfig`` key the experiment is named after the pipeline and
the trial after the execution id, as the SDK's default does; an explicit ``null`` turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.expressions import Expr, Get, Namespace, Reference, compile_value, parse_reference
from callback_worker.emulator.nodes import as_list, as_object, check_keys
from callback_worker.emulator.parameters import ParameterSpec, parse_parameters, resolve_parameters
from callback_worker.emulator.steps import OutputSpec, StepKind, StepSpec, parse_steps
from callback_worker.emulator.values import JSONValue, Scalar, load_json

__all__ = ["ExperimentSpec", "OutputSpec", "ParameterSpec", "PipelineSpec", "StepSpec", "parse_definition"]

VERSION = "2020-12-01"
_TOP_KEYS = frozenset({"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "MlflowConfig", "Steps"})
_MLFLOW_KEYS = frozenset({"MlflowResourceArn", "MlflowExperimentName"})
_METADATA_KEY = re.compile(r"[A-Za-z0-9\-_]{1,128}")
_METADATA_VALUE_CHARS = 1024


@dataclass(frozen=True)
class ExperimentSpec:
    """The ``PipelineExperimentConfig`` of a definition, as expressions."""

    experiment_name: Expr
    trial_name: Expr


@dataclass(frozen=True)
class PipelineSpec:
    """A checked pipeline definition; ``steps`` is in a dependency order (definition order among equals)."""

    parameters: Mapping[str, ParameterSpec]
    steps: tuple[StepSpec, ...]
    experiment: ExperimentSpec | None
    #: ``MlflowConfig``: its members as expressions (``None`` for ``null`` or absent).
    mlflow: Expr | None = None

    def step(self, name: str) -> StepSpec:
        """The step called ``name`` (which must exist)."""
        return next(step for step in self.steps if step.name == name)

    def resolve_parameters(self, given: Sequence[Mapping[str, str]]) -> dict[str, Scalar]:
        """Every parameter's value for one execution (see :func:`emulator.parameters.resolve_parameters`)."""
        return resolve_parameters(self.parameters, given)


def parse_definition(text: str, *, stubs: bool = False) -> PipelineSpec:
    """Parse and check a ``PipelineDefinition``; raise :class:`DefinitionError` saying what is wrong.

    With ``stubs``, the step types of :data:`emulator.stubs.STUB_TYPES` are accepted too.
    """
    try:
        return _parse(_load(text), stubs)
    except DefinitionError as error:
        raise DefinitionError(f"Invalid pipeline definition: {error.message}") from None


def _load(text: str) -> dict[str, JSONValue]:
    try:
        document = load_json(text)
    except ValueError as error:
        raise DefinitionError(f"the definition is {error}" if str(error).startswith("not ") else str(error)) from None
    if not isinstance(document, dict):
        raise DefinitionError("the definition must be a JSON object")
    return document


def _parse(document: dict[str, JSONValue], stubs: bool) -> PipelineSpec:
    check_keys(document, _TOP_KEYS, "the definition")
    if "Version" in document and document["Version"] != VERSION:
        raise DefinitionError(f"'Version' must be {VERSION!r}, found {document.get('Version')!r}")
    _check_metadata(document.get("Metadata"))
    parameters = parse_parameters(as_list(document, "Parameters", "the definition"))
    raw_steps = as_list(document, "Steps", "the definition")
    if not raw_steps:
        raise DefinitionError("'Steps' must list at least one step")
    steps = parse_steps(raw_steps, stubs=stubs)
    experiment = _parse_experiment(document)
    mlflow = _parse_mlflow(document.get("MlflowConfig"))
    by_name = {step.name: step for step in steps}
    steps = [_with_references(step, parameters, by_name) for step in steps]
    _check_experiment_references(experiment, parameters)
    _check_config_references(mlflow, "MlflowConfig", parameters)
    return PipelineSpec(parameters, _dependency_order(steps), experiment, mlflow)


def _check_metadata(node: JSONValue) -> None:
    if node is None:
        return
    for key, value in as_object(node, "Metadata").items():
        if not _METADATA_KEY.fullmatch(key):
            raise DefinitionError(f"Metadata: the key {key!r} does not match [A-Za-z0-9-_]{{1,128}}")
        if not isinstance(value, str) or len(value) > _METADATA_VALUE_CHARS:
            raise DefinitionError(f"Metadata.{key}: must be a string of at most {_METADATA_VALUE_CHARS} characters")


def _parse_experiment(document: Mapping[str, JSONValue]) -> ExperimentSpec | None:
    if "PipelineExperimentConfig" not in document:
        return ExperimentSpec(
            Get(parse_reference("Execution.PipelineName", "PipelineExperimentConfig.ExperimentName")),
            Get(parse_reference("Execution.PipelineExecutionId", "PipelineExperimentConfig.TrialName")),
        )
    node = document["PipelineExperimentConfig"]
    if node is None:
        return None
    config = as_object(node, "PipelineExperimentConfig")
    check_keys(config, frozenset({"ExperimentName", "TrialName"}), "PipelineExperimentConfig")
    defaults = {"ExperimentName": "Execution.PipelineName", "TrialName": "Execution.PipelineExecutionId"}
    exprs = {
        key: compile_value(config[key], f"PipelineExperimentConfig.{key}")
        if key in config
        else Get(parse_reference(target, f"PipelineExperimentConfig.{key}"))
        for key, target in defaults.items()
    }
    return ExperimentSpec(exprs["ExperimentName"], exprs["TrialName"])


def _parse_mlflow(node: JSONValue) -> Expr | None:
    if node is None:
        return None
    config = as_object(node, "MlflowConfig")
    check_keys(config, _MLFLOW_KEYS, "MlflowConfig")
    if config.get("MlflowResourceArn") is None:
        raise DefinitionError(
            "MlflowConfig: MlflowResourceArn is required (the MLflow tracking server or app; MlflowExperimentName is "
            "optional); for no MLflow tracking, MlflowConfig is null"
        )
    for key, value in config.items():
        if value is not None and not isinstance(value, (str, dict)):
            raise DefinitionError(f"MlflowConfig.{key}: must be a string")
    return compile_value({key: value for key, value in config.items() if value is not None}, "MlflowConfig")


def _check_experiment_references(experiment: ExperimentSpec | None, parameters: Mapping[str, ParameterSpec]) -> None:
    if experiment is None:
        return
    for expr in (experiment.experiment_name, experiment.trial_name):
        _check_config_references(expr, "the experiment config", parameters)


def _check_config_references(expr: Expr | None, what: str, parameters: Mapping[str, ParameterSpec]) -> None:
    for reference in expr.references() if expr is not None else ():
        if reference.namespace not in (Namespace.PARAMETERS, Namespace.EXECUTION):
            raise DefinitionError(f"{reference.path}: {what} can read only parameters and execution variables")
        _check_parameter(reference, parameters)


def _check_parameter(reference: Reference, parameters: Mapping[str, ParameterSpec]) -> None:
    if reference.namespace is Namespace.PARAMETERS and reference.name not in parameters:
        raise DefinitionError(f"{reference.path}: parameter {reference.name!r} is not defined")


def _with_references(
    step: StepSpec, parameters: Mapping[str, ParameterSpec], by_name: Mapping[str, StepSpec]
) -> StepSpec:
    referenced: set[str] = set()
    own = set(step.arguments.references()) if step.kind is StepKind.FOR_EACH else set()
    for reference in step.references():
        _check_parameter(reference, parameters)
        if reference.namespace is Namespace.FOR_EACH and (step.kind is not StepKind.FOR_EACH or reference in own):
            raise DefinitionError(f"{reference.path}: ForEach.CurrentItem can be read only by a ForEach body step")
        if reference.namespace is Namespace.STEPS:
            _check_step_reference(reference, step, by_name)
            referenced.add(reference.name)
    _check_depends_on(step, by_name)
    if step.for_each is not None:
        body = tuple(_with_sibling_references(child, step.for_each.body, by_name) for child in step.for_each.body)
        referenced |= {name for child in step.for_each.body for name in child.depends_on if name in by_name}
        step = replace(step, for_each=replace(step.for_each, body=body))
    return replace(step, depends_on=step.depends_on | referenced)


def _with_sibling_references(child: StepSpec, body: tuple[StepSpec, ...], by_name: Mapping[str, StepSpec]) -> StepSpec:
    """A body step, depending on the body siblings it reads or names (its other dependencies are the ForEach's)."""
    siblings = {sibling.name: sibling for sibling in body}
    _check_depends_on(child, {**by_name, **siblings})
    needs = {name for name in child.depends_on if name in siblings}
    for reference in child.references():
        if reference.namespace is Namespace.STEPS and reference.name in siblings:
            _check_step_reference(reference, child, siblings)
            needs.add(reference.name)
    return replace(child, depends_on=frozenset(needs))


def _check_depends_on(step: StepSpec, by_name: Mapping[str, StepSpec]) -> None:
    for name in step.depends_on:
        if name == step.name:
            raise DefinitionError(f"step {step.name!r}: a step cannot depend on itself")
        if name not in by_name:
            raise DefinitionError(f"step {step.name!r}: DependsOn names {name!r}, which is not a step")


_FOR_EACH_PROPERTIES = re.compile(
    r"(Status|InputItemCount|TotalStepCount|SucceededStepCount|FailedStepCount|StoppedStepCount)"
    r"|IterationOutputs\[[0-9]+\]\.[A-Za-z0-9\-_]+\..+|Selected\..+"
)


def _check_step_reference(reference: Reference, step: StepSpec, by_name: Mapping[str, StepSpec]) -> None:
    source = by_name.get(reference.name)
    if source is None:
        raise DefinitionError(f"{reference.path}: step {reference.name!r} does not exist")
    if source.name == step.name:
        raise DefinitionError(f"{reference.path}: a step cannot read its own outputs")
    if source.kind is StepKind.STUB:
        return
    if source.kind is StepKind.CONDITION and reference.prop == "Outcome":
        return
    if source.kind is StepKind.FOR_EACH and _FOR_EACH_PROPERTIES.fullmatch(reference.prop or ""):
        return
    if source.kind is not StepKind.CALLBACK or reference.output is None:
        readable = {
            StepKind.CALLBACK: f"only Steps.{source.name}.OutputParameters['<name>'] of a Callback step can be read",
            StepKind.CONDITION: f"only Steps.{source.name}.Outcome of a Condition step can be read",
            StepKind.FOR_EACH: "a ForEach step offers Status, the step counts, IterationOutputs[<i>].<body step>"
            ".<member> and Selected.<member>",
        }.get(source.kind, "a Fail step has no properties")
        raise DefinitionError(f"{reference.path}: Steps.{source.name}.{reference.prop} is not supported; {readable}")
    if source.output(reference.output) is None:
        declared = ", ".join(output.name for output in source.outputs) or "none"
        raise DefinitionError(
            f"{reference.path}: step {source.name!r} declares no output {reference.output!r} (declared: {declared})"
        )


def _dependency_order(steps: list[StepSpec]) -> tuple[StepSpec, ...]:
    ordered: list[StepSpec] = []
    placed: set[str] = set()
    remaining = list(steps)
    while remaining:
        ready = [step for step in remaining if step.depends_on <= placed]
        if not ready:
            names = ", ".join(repr(step.name) for step in remaining)
            raise DefinitionError(f"the dependencies of the steps {names} form a cycle")
        ordered.extend(ready)
        placed.update(step.name for step in ready)
        remaining = [step for step in remaining if step.name not in placed]
    return tuple(ordered)
