"""The steps of a pipeline definition: Callback, Condition and Fail steps, and (opt-in) stubbed steps.

- ``Callback``: ``SqsQueueUrl``, ``Arguments`` (object), ``OutputParameters`` ``[{OutputName, OutputType}]``.
- ``Condition``: ``Arguments: {"Conditions": [...], "IfSteps": [step, ...], "ElseSteps": [step, ...]}`` as
  the SDK writes it: the branches hold whole step definitions. They are flattened here: each step of a branch
  depends on the Condition step and carries the :class:`Branch` it lies on, so it starts only when the
  Condition step's outcome is that branch's.
- ``Fail``: ``Arguments: {"ErrorMessage": value}`` (a string, ``Std:Join``, ``Get``...).
- With stubs on, every type of :data:`emulator.stubs.STUB_TYPES` (Training, Processing, ...): accepted as
  written (every member but the name, type, display name, description and ``DependsOn`` is compiled, so its
  ``Get`` references are dependencies), run as a stub that succeeds.

Every step may have ``DependsOn``, ``DisplayName`` (``[A-Za-z0-9-_]{1,64}``, as the schema says) and
``Description``; Callback steps also ``CacheConfig`` (accepted, never used).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, replace

from callback_worker.emulator.conditions import Condition, compile_conditions
from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.expressions import Const, Expr, Reference, compile_value
from callback_worker.emulator.nodes import NAME, as_list, as_object, check_keys, check_unique, optional_text
from callback_worker.emulator.parameters import value_type_of
from callback_worker.emulator.stubs import STUB_TYPES
from callback_worker.emulator.values import JSONValue, ValueType

_COMMON_KEYS = frozenset({"Name", "Type", "DependsOn", "DisplayName", "Description"})
_CALLBACK_KEYS = _COMMON_KEYS | {"SqsQueueUrl", "Arguments", "OutputParameters", "CacheConfig"}
_ARGUMENTS_KEYS = _COMMON_KEYS | {"Arguments"}
_OUTPUT_KEYS = frozenset({"OutputName", "OutputType"})
_NOTHING: Expr = Const(None)


class StepKind(enum.StrEnum):
    """How the emulator runs a step."""

    CALLBACK = "Callback"
    CONDITION = "Condition"
    FAIL = "Fail"
    STUB = "Stub"


@dataclass(frozen=True)
class OutputSpec:
    """A declared callback output."""

    name: str
    type: ValueType


@dataclass(frozen=True)
class Branch:
    """The branch of a Condition step a step lies on: it runs only if ``condition``'s outcome is ``outcome``."""

    condition: str
    outcome: bool


@dataclass(frozen=True)
class StepSpec:
    """One step of a definition (branches flattened).

    ``arguments`` is a Callback step's ``Arguments``, a Fail step's ``ErrorMessage`` or a stubbed step's
    members; ``type`` is the definition's ``Type`` (``Training`` for a stubbed training step).
    """

    name: str
    type: str
    kind: StepKind
    display_name: str | None
    description: str | None
    depends_on: frozenset[str]
    arguments: Expr = _NOTHING
    queue_url: Expr = _NOTHING
    outputs: tuple[OutputSpec, ...] = ()
    conditions: tuple[Condition, ...] = ()
    branch: Branch | None = None

    def output(self, name: str) -> OutputSpec | None:
        """The declared output called ``name``, if any."""
        return next((output for output in self.outputs if output.name == name), None)

    def references(self) -> Iterator[Reference]:
        """Every ``Get`` the step reads."""
        yield from self.arguments.references()
        yield from self.queue_url.references()
        for condition in self.conditions:
            yield from condition.references()


def parse_steps(nodes: list[JSONValue], *, stubs: bool) -> list[StepSpec]:
    """Every step of ``Steps``, branches flattened after their Condition step; names must be unique."""
    steps = _flatten(nodes, "Steps", stubs, None)
    check_unique((step.name for step in steps), "step")
    return steps


def _flatten(nodes: list[JSONValue], where: str, stubs: bool, branch: Branch | None) -> list[StepSpec]:
    steps: list[StepSpec] = []
    for index, node in enumerate(nodes):
        step = _parse_step(node, f"{where}[{index}]", stubs)
        if branch is not None:
            step = replace(step, branch=branch, depends_on=step.depends_on | {branch.condition})
        steps.append(step)
        if step.kind is StepKind.CONDITION:
            arguments = as_object(_raw_arguments(node), f"step {step.name!r}, Arguments")
            for key, outcome in (("IfSteps", True), ("ElseSteps", False)):
                inner = as_list(arguments, key, f"step {step.name!r}")
                steps.extend(_flatten(inner, f"step {step.name!r}, {key}", stubs, Branch(step.name, outcome)))
    return steps


def _raw_arguments(node: JSONValue) -> JSONValue:
    return node.get("Arguments", {}) if isinstance(node, dict) else {}


def _parse_step(node: JSONValue, where: str, stubs: bool) -> StepSpec:
    item = as_object(node, where)
    name = item.get("Name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DefinitionError(f"{where}.Name: must match [A-Za-z0-9-_]{{1,64}}, found {name!r}")
    where = f"step {name!r}"
    step_type = item.get("Type")
    common = StepSpec(
        name=name,
        type=str(step_type),
        kind=StepKind.STUB,
        display_name=optional_text(item, "DisplayName", where, NAME),
        description=optional_text(item, "Description", where),
        depends_on=frozenset(_depends_on(item.get("DependsOn", []), where)),
    )
    if step_type == "Callback":
        check_keys(item, _CALLBACK_KEYS, where)
        return _callback(item, common, where)
    if step_type == "Condition":
        check_keys(item, _ARGUMENTS_KEYS, where)
        return _condition(item, common, where)
    if step_type == "Fail":
        check_keys(item, _ARGUMENTS_KEYS, where)
        return _fail(item, common, where)
    if stubs and step_type in STUB_TYPES:
        members = {key: value for key, value in item.items() if key not in _COMMON_KEYS}
        return replace(common, arguments=compile_value(members, where))
    hint = "" if stubs or step_type not in STUB_TYPES else " (start the emulator with --stub-steps to run it as a stub)"
    raise DefinitionError(
        f"{where} has Type {step_type!r}, which is not supported: only 'Callback', 'Condition' and 'Fail' "
        f"steps can run here{hint}"
    )


def _callback(item: dict[str, JSONValue], common: StepSpec, where: str) -> StepSpec:
    _check_cache_config(item.get("CacheConfig"), where)
    arguments = as_object(item.get("Arguments", {}), f"{where}, Arguments")
    return replace(
        common,
        kind=StepKind.CALLBACK,
        queue_url=_queue_url(item.get("SqsQueueUrl"), where),
        arguments=compile_value(arguments, f"{where}, Arguments"),
        outputs=_parse_outputs(as_list(item, "OutputParameters", where), where),
    )


def _condition(item: dict[str, JSONValue], common: StepSpec, where: str) -> StepSpec:
    arguments = as_object(item.get("Arguments"), f"{where}, Arguments")
    check_keys(arguments, frozenset({"Conditions", "IfSteps", "ElseSteps"}), f"{where}, Arguments")
    conditions = compile_conditions(arguments.get("Conditions"), f"{where}, Arguments.Conditions")
    return replace(common, kind=StepKind.CONDITION, conditions=conditions)


def _fail(item: dict[str, JSONValue], common: StepSpec, where: str) -> StepSpec:
    arguments = as_object(item.get("Arguments", {}), f"{where}, Arguments")
    check_keys(arguments, frozenset({"ErrorMessage"}), f"{where}, Arguments")
    message = compile_value(arguments.get("ErrorMessage") or "", f"{where}, Arguments.ErrorMessage")
    return replace(common, kind=StepKind.FAIL, arguments=message)


def _queue_url(node: JSONValue, where: str) -> Expr:
    if node is None:
        raise DefinitionError(f"{where}: 'SqsQueueUrl' is required")
    expr = compile_value(node, f"{where}, SqsQueueUrl")
    if isinstance(expr, Const) and not (isinstance(node, str) and node):
        raise DefinitionError(f"{where}: 'SqsQueueUrl' must be a non-empty string")
    return expr


def _check_cache_config(node: JSONValue, where: str) -> None:
    if node is None:
        return
    config = as_object(node, f"{where}, CacheConfig")
    check_keys(config, frozenset({"Enabled", "ExpireAfter"}), f"{where}, CacheConfig")
    if not isinstance(config.get("Enabled", False), bool):
        raise DefinitionError(f"{where}, CacheConfig.Enabled: must be a boolean")


def _parse_outputs(nodes: list[JSONValue], where: str) -> tuple[OutputSpec, ...]:
    outputs = []
    for index, node in enumerate(nodes):
        item = as_object(node, f"{where}, OutputParameters[{index}]")
        check_keys(item, _OUTPUT_KEYS, f"{where}, OutputParameters[{index}]")
        name = item.get("OutputName")
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"{where}, OutputParameters[{index}]: 'OutputName' must be a non-empty string")
        outputs.append(OutputSpec(name, value_type_of(item.get("OutputType", "String"), f"{where}, output {name!r}")))
    check_unique((output.name for output in outputs), f"output (of {where})")
    return tuple(outputs)


def _depends_on(node: JSONValue, where: str) -> list[str]:
    if not isinstance(node, list) or not all(isinstance(name, str) for name in node):
        raise DefinitionError(f"{where}: 'DependsOn' must be an array of step names")
    return [str(name) for name in node]
