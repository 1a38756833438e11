"""Expressions in pipeline definitions (as the SageMaker Python SDK writes them), compiled and evaluated.

A value in a definition is either a constant (kept with its JSON type), an object or array of values, or one
of these expressions:

- ``{"Get": "Parameters.<name>"}`` - a pipeline parameter, typed as declared;
- ``{"Get": "Steps.<step>.OutputParameters['<output>']"}`` - a callback step's output, typed as declared (a
  reference to a step is also a dependency on it);
- ``{"Get": "Steps.<step>.<property path>"}`` - a property of a stubbed step (from the stub values) or a
  Condition step's ``Outcome``; which paths a step offers is checked by :mod:`emulator.definition`;
- ``{"Get": "Execution.<variable>"}`` - ``PipelineExecutionId``, ``PipelineExecutionArn``, ``PipelineName``,
  ``PipelineArn``, ``StartDateTime`` or ``CurrentDateTime`` (text);
- ``{"Get": "PipelineExperimentConfig.ExperimentName"}`` / ``.TrialName`` - the resolved experiment config;
- ``{"Get": "ForEach.CurrentItem"}``, ``ForEach.CurrentItem.<field>...``, ``ForEach.CurrentItem['<field>']`` -
  inside a ForEach body step, the item of its iteration (a JSON object's field, for a field path);
- ``{"Std:Join": {"On": "/", "Values": [...]}}`` - the values as text (see :func:`values.to_text`) joined;
- ``{"Std:JsonGet": {"S3Uri": <value>, "Path": "a.b[0]"}}`` - a value inside the JSON document at that S3 URI
  (the URI is often a Join of a parameter or a callback output), and ``{"Std:JsonGet": {"PropertyFile":
  {"Get": "Steps.<step>.PropertyFiles.<name>"}, "Path": ...}}`` - a value inside a stubbed step's property file
  (beyond the service, the ``Get`` may also name a parameter or a callback output holding JSON text).

Anything else that looks like an expression (a ``Get`` of another path, ``Std:Select``, ...) is refused
with a :class:`DefinitionError` that names it and where it is. Evaluation problems (a value not there yet, a
path that is not in a document) raise :class:`EvaluationError`, which fails the step being started.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from callback_worker.emulator.errors import DefinitionError, EmulatorError
from callback_worker.emulator.jsonpath import select
from callback_worker.emulator.values import JSONValue, Scalar, load_json, to_text

EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
    }
)
EXPERIMENT_PROPERTIES = frozenset({"ExperimentName", "TrialName"})

_NAME = r"[A-Za-z0-9\-_]+"
_PARAMETER = re.compile(rf"Parameters\.({_NAME})")
_STEP_OUTPUT = re.compile(rf"Steps\.({_NAME})\.OutputParameters\[(['\"])(.+?)\2\]")
_STEP_PROPERTY = re.compile(rf"Steps\.({_NAME})\.(.+)")
_EXECUTION = re.compile(r"Execution\.(\w+)")
_EXPERIMENT = re.compile(r"PipelineExperimentConfig\.(\w+)")
_CURRENT_ITEM = re.compile(r"ForEach\.CurrentItem((?:\.\w+|\[(['\"]).+?\2\])*)")


class EvaluationError(EmulatorError):
    """An expression could not be evaluated for this execution (the step fails with this reason)."""


class Namespace(enum.StrEnum):
    """What a ``Get`` refers to."""

    PARAMETERS = "Parameters"
    STEPS = "Steps"
    EXECUTION = "Execution"
    EXPERIMENT = "PipelineExperimentConfig"
    FOR_EACH = "ForEach"


@dataclass(frozen=True)
class Reference:
    """One ``Get`` inside a definition: its namespace, the name it reads, and where it is (for messages).

    A step reference has either ``output`` (``OutputParameters['<output>']``) or ``prop`` (any other path).
    """

    namespace: Namespace
    name: str
    output: str | None
    path: str
    prop: str | None = None


class Context(Protocol):
    """What evaluating an expression needs from the running execution."""

    def parameter(self, name: str) -> Scalar:
        """The value of parameter ``name`` for this execution."""
        ...

    def step_output(self, step: str, output: str) -> JSONValue:
        """The typed value that step ``step`` reported for ``output``."""
        ...

    def step_property(self, step: str, prop: str) -> JSONValue:
        """The value of property ``prop`` (a path such as ``ModelArtifacts.S3ModelArtifacts``) of ``step``."""
        ...

    def json_document(self, uri: str) -> JSONValue:
        """The JSON document stored at ``uri`` (``s3://bucket/key``)."""
        ...

    def execution_variable(self, name: str) -> str:
        """The value of ``Execution.<name>``."""
        ...

    def experiment_property(self, name: str) -> str:
        """The resolved ``PipelineExperimentConfig.<name>``."""
        ...

    def current_item(self, path: str) -> JSONValue:
        """Inside a ForEach body step: its iteration's item, or (``path`` such as ``.a.b``) a field of it."""
        ...


class Expr(Protocol):
    """A compiled definition value."""

    def evaluate(self, context: Context) -> JSONValue:
        """The JSON value for one execution."""
        ...

    def references(self) -> Iterator[Reference]:
        """Every ``Get`` inside, in definition order."""
        ...


@dataclass(frozen=True)
class Const:
    """A constant; evaluates to itself."""

    value: JSONValue

    def evaluate(self, context: Context) -> JSONValue:
        return self.value

    def references(self) -> Iterator[Reference]:
        return iter(())


@dataclass(frozen=True)
class ObjectExpr:
    """A JSON object whose member values are expressions."""

    members: tuple[tuple[str, Expr], ...]

    def evaluate(self, context: Context) -> JSONValue:
        return {key: value.evaluate(context) for key, value in self.members}

    def references(self) -> Iterator[Reference]:
        for _, value in self.members:
            yield from value.references()


@dataclass(frozen=True)
class ListExpr:
    """A JSON array whose items are expressions."""

    items: tuple[Expr, ...]

    def evaluate(self, context: Context) -> JSONValue:
        return [item.evaluate(context) for item in self.items]

    def references(self) -> Iterator[Reference]:
        for item in self.items:
            yield from item.references()


@dataclass(frozen=True)
class Get:
    """A ``{"Get": ...}`` reference."""

    reference: Reference

    def evaluate(self, context: Context) -> JSONValue:
        ref = self.reference
        if ref.namespace is Namespace.PARAMETERS:
            return context.parameter(ref.name)
        if ref.namespace is Namespace.STEPS and ref.prop is not None:
            return context.step_property(ref.name, ref.prop)
        if ref.namespace is Namespace.STEPS:
            return context.step_output(ref.name, ref.output or "")
        if ref.namespace is Namespace.EXECUTION:
            return context.execution_variable(ref.name)
        if ref.namespace is Namespace.FOR_EACH:
            return context.current_item(ref.prop or "")
        return context.experiment_property(ref.name)

    def references(self) -> Iterator[Reference]:
        yield self.reference


@dataclass(frozen=True)
class Join:
    """``Std:Join``: the values' text joined with ``on``."""

    on: str
    values: tuple[Expr, ...]

    def evaluate(self, context: Context) -> JSONValue:
        return self.on.join(to_text(value.evaluate(context)) for value in self.values)

    def references(self) -> Iterator[Reference]:
        for value in self.values:
            yield from value.references()


@dataclass(frozen=True)
class JsonGet:
    """``Std:JsonGet``: the value at ``path`` in a JSON document (an S3 object, or a stubbed property file)."""

    source: Expr
    path: str
    from_s3: bool

    def evaluate(self, context: Context) -> JSONValue:
        if self.from_s3:
            document = context.json_document(to_text(self.source.evaluate(context)))
        else:
            document = self.source.evaluate(context)
        if isinstance(document, str):
            try:
                document = load_json(document)
            except ValueError as error:
                raise EvaluationError(f"Std:JsonGet: the document is {error}") from None
        try:
            return select(document, self.path)
        except (KeyError, IndexError, TypeError) as error:
            raise EvaluationError(f"Std:JsonGet path {self.path!r}: {error}") from None

    def references(self) -> Iterator[Reference]:
        return self.source.references()


def compile_value(node: JSONValue, path: str) -> Expr:
    """Compile one definition value found at ``path`` (used in error messages) into an :class:`Expr`."""
    if isinstance(node, list):
        return ListExpr(tuple(compile_value(item, f"{path}[{index}]") for index, item in enumerate(node)))
    if not isinstance(node, dict):
        return Const(node)
    functions = [key for key in node if key == "Get" or key.startswith("Std:")]
    if not functions:
        return ObjectExpr(tuple((key, compile_value(value, f"{path}.{key}")) for key, value in node.items()))
    if len(node) != 1:
        raise DefinitionError(f"{path}: the expression {functions[0]!r} must be the only key of its object")
    if "Get" in node:
        return _compile_get(node["Get"], path)
    if "Std:Join" in node:
        return _compile_join(node["Std:Join"], path)
    if "Std:JsonGet" in node:
        return _compile_json_get(node["Std:JsonGet"], f"{path}.Std:JsonGet")
    raise DefinitionError(f"{path}: the function {functions[0]!r} is not supported in Callback pipelines")


def _compile_get(target: JSONValue, path: str) -> Get:
    if not isinstance(target, str):
        raise DefinitionError(f"{path}: 'Get' takes a string such as 'Parameters.Name'")
    return Get(parse_reference(target, path))


def parse_reference(target: str, path: str) -> Reference:
    """Parse the text of a ``Get``; raise :class:`DefinitionError` if it reads nothing supported."""
    if match := _PARAMETER.fullmatch(target):
        return Reference(Namespace.PARAMETERS, match[1], None, path)
    if match := _STEP_OUTPUT.fullmatch(target):
        return Reference(Namespace.STEPS, match[1], match[3], path)
    if match := _STEP_PROPERTY.fullmatch(target):
        return Reference(Namespace.STEPS, match[1], None, path, prop=match[2])
    if (match := _EXECUTION.fullmatch(target)) and match[1] in EXECUTION_VARIABLES:
        return Reference(Namespace.EXECUTION, match[1], None, path)
    if (match := _EXPERIMENT.fullmatch(target)) and match[1] in EXPERIMENT_PROPERTIES:
        return Reference(Namespace.EXPERIMENT, match[1], None, path)
    if match := _CURRENT_ITEM.fullmatch(target):
        return Reference(Namespace.FOR_EACH, "CurrentItem", None, path, prop=match[1])
    raise DefinitionError(f"{path}: cannot resolve {{'Get': {target!r}}}")


def _compile_join(spec: JSONValue, path: str) -> Join:
    where = f"{path}.Std:Join"
    values = spec.get("Values") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(values, list):
        raise DefinitionError(f"{where}: takes an object with a 'Values' array and an optional 'On'")
    on = spec.get("On", "")
    if not isinstance(on, str):
        raise DefinitionError(f"{where}.On: must be a string")
    unknown = sorted(set(spec) - {"On", "Values"})
    if unknown:
        raise DefinitionError(f"{where}: unknown keys {unknown}")
    items = (compile_value(value, f"{where}.Values[{index}]") for index, value in enumerate(values))
    return Join(on, tuple(items))


def _compile_json_get(spec: JSONValue, where: str) -> JsonGet:
    if not isinstance(spec, dict) or not isinstance(spec.get("Path"), str) or len(spec) != 2:
        raise DefinitionError(f"{where}: takes an object with 'Path' (a string) and 'S3Uri' or 'PropertyFile'")
    json_path = str(spec["Path"])
    select(None, json_path, check_only=True)
    if "S3Uri" in spec:
        return JsonGet(compile_value(spec["S3Uri"], f"{where}.S3Uri"), json_path, from_s3=True)
    source = compile_value(spec.get("PropertyFile"), f"{where}.PropertyFile")
    if not isinstance(source, Get):
        raise DefinitionError(f"{where}.PropertyFile: must be {{'Get': 'Steps.<step>.PropertyFiles.<name>'}}")
    return JsonGet(source, json_path, from_s3=False)
