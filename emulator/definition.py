"""Pipeline definitions: parse and check the ``PipelineDefinition`` JSON text of ``CreatePipeline``.

The accepted document follows the public pipeline definition schema and what the SageMaker Python SDK
generates for callback pipelines::

    {"Version": "2020-12-01", "Metadata": {},
     "Parameters": [{"Name": "Size", "Type": "Integer", "DefaultValue": 5}],
     "PipelineExperimentConfig": {"ExperimentName": {"Get": "Execution.PipelineName"},
                                  "TrialName": {"Get": "Execution.PipelineExecutionId"}},
     "Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": "https://...",
                "Arguments": {"size": {"Get": "Parameters.Size"}},
                "OutputParameters": [{"OutputName": "n", "OutputType": "Integer"}]}]}

Only ``Callback`` steps are supported; any other step type is refused, naming the type and the step. Every
``Get`` must resolve (declared parameters, declared outputs of other steps); a step reference is also a
dependency; ``DependsOn`` names must exist; the dependency graph must be acyclic; names must be unique.
Without a ``PipelineExperimentConfig`` key the experiment is named after the pipeline and the trial after the
execution id, as the SDK's default does; an explicit ``null`` turns the experiment config off.
``CacheConfig`` is accepted and has no effect (the emulator never reuses a previous step's result).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from emulator.errors import DefinitionError, ValidationError
from emulator.expressions import (
    Const,
    Expr,
    Get,
    Namespace,
    Reference,
    compile_value,
    parse_reference,
)
from emulator.values import JsonValue, Scalar, ValueType, check_typed, parse_typed

VERSION = "2020-12-01"
_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9\-_]{1,256}")
_TOP_KEYS = frozenset({"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "Steps"})
_PARAMETER_KEYS = frozenset({"Name", "Type", "DefaultValue", "EnumValues", "Description"})
_STEP_KEYS = frozenset(
    {
        "Name",
        "Type",
        "SqsQueueUrl",
        "Arguments",
        "OutputParameters",
        "DependsOn",
        "DisplayName",
        "Description",
        "CacheConfig",
    }
)
_OUTPUT_KEYS = frozenset({"OutputName", "OutputType"})


@dataclass(frozen=True)
class ParameterSpec:
    """A declared pipeline parameter."""

    name: str
    type: ValueType
    default: Scalar | None
    enum_values: tuple[str, ...] | None

    def value_for(self, text: str | None) -> Scalar:
        """The value of this parameter for one execution: ``text`` converted to the type, else the default.

        Raises :class:`ValidationError` when the text does not parse, is outside ``EnumValues``, or is absent
        while there is no default.
        """
        if text is None:
            if self.default is None:
                raise ValidationError(
                    f"Parameter '{self.name}' has no DefaultValue and was not given in PipelineParameters"
                )
            return self.default
        try:
            value = parse_typed(text, self.type)
        except ValueError as error:
            raise ValidationError(f"Parameter '{self.name}': {error}") from None
        if self.enum_values is not None and value not in self.enum_values:
            raise ValidationError(
                f"Parameter '{self.name}': {text!r} is not one of its EnumValues {list(self.enum_values)}"
            )
        return value


@dataclass(frozen=True)
class OutputSpec:
    """A declared callback output."""

    name: str
    type: ValueType


@dataclass(frozen=True)
class StepSpec:
    """A Callback step of a definition."""

    name: str
    display_name: str | None
    description: str | None
    queue_url: Expr
    arguments: Expr
    outputs: tuple[OutputSpec, ...]
    depends_on: frozenset[str]

    def output(self, name: str) -> OutputSpec | None:
        """The declared output called ``name``, if any."""
        return next((output for output in self.outputs if output.name == name), None)


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

    def step(self, name: str) -> StepSpec:
        """The step called ``name`` (which must exist)."""
        return next(step for step in self.steps if step.name == name)

    def resolve_parameters(self, given: Sequence[Mapping[str, str]]) -> dict[str, Scalar]:
        """Every parameter's value for one execution, from ``PipelineParameters`` ``[{Name, Value}]``.

        Raises :class:`ValidationError` for an unknown or repeated name and for a value that is not of the
        parameter's type.
        """
        texts: dict[str, str] = {}
        for item in given:
            name = item["Name"]
            if name not in self.parameters:
                known = ", ".join(sorted(self.parameters)) or "none"
                raise ValidationError(
                    f"Parameter '{name}' is not defined in the pipeline definition (defined: {known})"
                )
            if name in texts:
                raise ValidationError(f"Parameter '{name}' is given more than once in PipelineParameters")
            texts[name] = item["Value"]
        return {name: spec.value_for(texts.get(name)) for name, spec in self.parameters.items()}


def parse_definition(text: str) -> PipelineSpec:
    """Parse and check a ``PipelineDefinition``; raise :class:`DefinitionError` saying what is wrong."""
    try:
        return _parse(_load(text))
    except DefinitionError as error:
        raise DefinitionError(f"Invalid pipeline definition: {error.message}") from None


def _reject_constant(name: str) -> JsonValue:
    raise DefinitionError(f"{name} is not a JSON value")


def _load(text: str) -> dict[str, JsonValue]:
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise DefinitionError(f"the definition is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise DefinitionError("the definition must be a JSON object")
    return document


def _check_keys(node: Mapping[str, JsonValue], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise DefinitionError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _optional_text(node: Mapping[str, JsonValue], key: str, where: str) -> str | None:
    value = node.get(key)
    if value is not None and not isinstance(value, str):
        raise DefinitionError(f"{where}.{key}: must be a string")
    return value


def _list(node: Mapping[str, JsonValue], key: str, where: str) -> list[JsonValue]:
    value = node.get(key, [])
    if not isinstance(value, list):
        raise DefinitionError(f"{where}: '{key}' must be an array")
    return value


def _object(value: JsonValue, where: str) -> dict[str, JsonValue]:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: must be a JSON object")
    return value


def _parse(document: dict[str, JsonValue]) -> PipelineSpec:
    _check_keys(document, _TOP_KEYS, "the definition")
    if document.get("Version") != VERSION:
        raise DefinitionError(f"'Version' must be {VERSION!r}, found {document.get('Version')!r}")
    parameters = _parse_parameters(_list(document, "Parameters", "the definition"))
    raw_steps = _list(document, "Steps", "the definition")
    if not raw_steps:
        raise DefinitionError("'Steps' must list at least one step")
    steps = [_parse_step(node, index) for index, node in enumerate(raw_steps)]
    _check_unique((step.name for step in steps), "step")
    experiment = _parse_experiment(document)
    steps = [_with_references(step, parameters, steps) for step in steps]
    _check_experiment_references(experiment, parameters)
    return PipelineSpec(parameters, _dependency_order(steps), experiment)


def _check_unique(names: Iterable[str], kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"the {kind} name {name!r} is used more than once")
        seen.add(name)


def _parse_parameters(nodes: list[JsonValue]) -> dict[str, ParameterSpec]:
    parameters = [_parse_parameter(node, index) for index, node in enumerate(nodes)]
    _check_unique((parameter.name for parameter in parameters), "parameter")
    return {parameter.name: parameter for parameter in parameters}


def _parse_parameter(node: JsonValue, index: int) -> ParameterSpec:
    where = f"Parameters[{index}]"
    item = _object(node, where)
    _check_keys(item, _PARAMETER_KEYS, where)
    name = item.get("Name")
    if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
        raise DefinitionError(f"{where}.Name: must match [A-Za-z0-9-_]{{1,256}}, found {name!r}")
    value_type = _value_type(item.get("Type", ValueType.STRING.value), f"parameter {name!r}")
    default = item.get("DefaultValue")
    try:
        typed_default = None if default is None else check_typed(default, value_type)
    except ValueError as error:
        raise DefinitionError(f"parameter {name!r}: DefaultValue {error}") from None
    return ParameterSpec(name, value_type, typed_default, _enum_values(item, value_type, name))


def _enum_values(item: Mapping[str, JsonValue], value_type: ValueType, name: str) -> tuple[str, ...] | None:
    values = item.get("EnumValues")
    if values is None:
        return None
    if value_type is not ValueType.STRING or not isinstance(values, list):
        raise DefinitionError(f"parameter {name!r}: EnumValues must be an array and only String takes one")
    if not all(isinstance(value, str) for value in values):
        raise DefinitionError(f"parameter {name!r}: EnumValues must be strings")
    default = item.get("DefaultValue")
    if default is not None and default not in values:
        raise DefinitionError(f"parameter {name!r}: DefaultValue {default!r} is not one of its EnumValues")
    return tuple(str(value) for value in values)


def _value_type(value: JsonValue, where: str) -> ValueType:
    for member in ValueType:
        if value == member.value:
            return member
    allowed = ", ".join(member.value for member in ValueType)
    raise DefinitionError(f"{where}: type {value!r} is not one of {allowed}")


def _parse_step(node: JsonValue, index: int) -> StepSpec:
    item = _object(node, f"Steps[{index}]")
    name = item.get("Name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DefinitionError(f"Steps[{index}].Name: must match [A-Za-z0-9-_]{{1,64}}, found {name!r}")
    where = f"step {name!r}"
    step_type = item.get("Type")
    if step_type != "Callback":
        raise DefinitionError(
            f"{where} has Type {step_type!r}, which is not supported: only 'Callback' steps can run here"
        )
    _check_keys(item, _STEP_KEYS, where)
    _check_cache_config(item.get("CacheConfig"), where)
    return StepSpec(
        name=name,
        display_name=_optional_text(item, "DisplayName", where),
        description=_optional_text(item, "Description", where),
        queue_url=_queue_url(item.get("SqsQueueUrl"), where),
        arguments=compile_value(_object(item.get("Arguments", {}), f"{where}, Arguments"), f"{where}, Arguments"),
        outputs=_parse_outputs(_list(item, "OutputParameters", where), where),
        depends_on=frozenset(_depends_on(item.get("DependsOn", []), where)),
    )


def _queue_url(node: JsonValue, where: str) -> Expr:
    if node is None:
        raise DefinitionError(f"{where}: 'SqsQueueUrl' is required")
    expr = compile_value(node, f"{where}, SqsQueueUrl")
    if isinstance(expr, Const) and not (isinstance(node, str) and node):
        raise DefinitionError(f"{where}: 'SqsQueueUrl' must be a non-empty string")
    return expr


def _check_cache_config(node: JsonValue, where: str) -> None:
    if node is None:
        return
    config = _object(node, f"{where}, CacheConfig")
    _check_keys(config, frozenset({"Enabled", "ExpireAfter"}), f"{where}, CacheConfig")
    if not isinstance(config.get("Enabled", False), bool):
        raise DefinitionError(f"{where}, CacheConfig.Enabled: must be a boolean")


def _parse_outputs(nodes: list[JsonValue], where: str) -> tuple[OutputSpec, ...]:
    outputs = []
    for index, node in enumerate(nodes):
        item = _object(node, f"{where}, OutputParameters[{index}]")
        _check_keys(item, _OUTPUT_KEYS, f"{where}, OutputParameters[{index}]")
        name = item.get("OutputName")
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"{where}, OutputParameters[{index}]: 'OutputName' must be a non-empty string")
        outputs.append(OutputSpec(name, _value_type(item.get("OutputType", "String"), f"{where}, output {name!r}")))
    _check_unique((output.name for output in outputs), f"output (of {where})")
    return tuple(outputs)


def _depends_on(node: JsonValue, where: str) -> list[str]:
    if not isinstance(node, list) or not all(isinstance(name, str) for name in node):
        raise DefinitionError(f"{where}: 'DependsOn' must be an array of step names")
    return [str(name) for name in node]


def _parse_experiment(document: Mapping[str, JsonValue]) -> ExperimentSpec | None:
    if "PipelineExperimentConfig" not in document:
        return ExperimentSpec(
            Get(parse_reference("Execution.PipelineName", "PipelineExperimentConfig.ExperimentName")),
            Get(parse_reference("Execution.PipelineExecutionId", "PipelineExperimentConfig.TrialName")),
        )
    node = document["PipelineExperimentConfig"]
    if node is None:
        return None
    config = _object(node, "PipelineExperimentConfig")
    _check_keys(config, frozenset({"ExperimentName", "TrialName"}), "PipelineExperimentConfig")
    defaults = {"ExperimentName": "Execution.PipelineName", "TrialName": "Execution.PipelineExecutionId"}
    exprs = {
        key: compile_value(config[key], f"PipelineExperimentConfig.{key}")
        if key in config
        else Get(parse_reference(target, f"PipelineExperimentConfig.{key}"))
        for key, target in defaults.items()
    }
    return ExperimentSpec(exprs["ExperimentName"], exprs["TrialName"])


def _check_experiment_references(experiment: ExperimentSpec | None, parameters: Mapping[str, ParameterSpec]) -> None:
    if experiment is None:
        return
    for expr in (experiment.experiment_name, experiment.trial_name):
        for reference in expr.references():
            if reference.namespace in (Namespace.STEPS, Namespace.EXPERIMENT):
                raise DefinitionError(
                    f"{reference.path}: the experiment config can read only parameters and execution variables"
                )
            _check_parameter(reference, parameters)


def _check_parameter(reference: Reference, parameters: Mapping[str, ParameterSpec]) -> None:
    if reference.namespace is Namespace.PARAMETERS and reference.name not in parameters:
        raise DefinitionError(f"{reference.path}: parameter {reference.name!r} is not defined")


def _with_references(step: StepSpec, parameters: Mapping[str, ParameterSpec], steps: list[StepSpec]) -> StepSpec:
    by_name = {other.name: other for other in steps}
    referenced: set[str] = set()
    for reference in (*step.arguments.references(), *step.queue_url.references()):
        _check_parameter(reference, parameters)
        if reference.namespace is Namespace.STEPS:
            _check_step_output(reference, step, by_name)
            referenced.add(reference.name)
    for name in step.depends_on:
        if name == step.name:
            raise DefinitionError(f"step {step.name!r}: a step cannot depend on itself")
        if name not in by_name:
            raise DefinitionError(f"step {step.name!r}: DependsOn names {name!r}, which is not a step")
    return StepSpec(
        step.name,
        step.display_name,
        step.description,
        step.queue_url,
        step.arguments,
        step.outputs,
        step.depends_on | referenced,
    )


def _check_step_output(reference: Reference, step: StepSpec, by_name: Mapping[str, StepSpec]) -> None:
    source = by_name.get(reference.name)
    if source is None:
        raise DefinitionError(f"{reference.path}: step {reference.name!r} does not exist")
    if source.name == step.name:
        raise DefinitionError(f"{reference.path}: a step cannot read its own outputs")
    if source.output(reference.output or "") is None:
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
