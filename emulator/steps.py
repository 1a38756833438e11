"""The steps of a pipeline definition: Callback, Condition and Fail steps, and (opt-in) stubbed steps.

- ``Callback``: ``SqsQueueUrl``, ``Arguments`` (object), ``OutputParameters`` ``[{OutputName, OutputType}]``.
- ``Condition``: ``Arguments: {"Conditions": [...], "IfSteps": [step, ...], "ElseSteps": [step, ...]}`` as
  the SDK writes it: the branches hold whole step definitions. They are flattened here: each step of a branch
  depends on the Condition step and carries the :class:`Branch` it lies on, so it starts only when the
  Condition step's outcome is that branch's.
- ``Fail``: ``Arguments: {"ErrorMessage": value}`` (a string, ``Std:Join``, ``Get``...).
- ``ForEach`` (SDK v3): ``Arguments: {"IterableItems": value, "MaxConcurrency": 1-50, "Selector": {"Pick":
  "MaxBy"|"MinBy", "Field": {"Get": "IterationOutput.<body step>.<member>"}}, "ForEachBody": [step, ...]}``. The
  items are an expression resolving to a JSON list (text) at run time, the only form the service takes, or, beyond
  it, a literal list of 1 to 100 values or expressions; the body steps
  (no Condition, Fail or ForEach) run once per item as child steps ``<body step>-<index>`` and may read
  ``{"Get": "ForEach.CurrentItem"}`` (or ``ForEach.CurrentItem.<field>``, ``ForEach.CurrentItem['<field>']``)
  and their body siblings' outputs; what the body reads from other steps makes the ForEach step depend on them.
  Body step names are unique across the pipeline. How it runs: :mod:`emulator.foreach`.
- With stubs on, every type of :data:`emulator.stubs.STUB_TYPES` (Training, Processing, ...): accepted as
  written (every member but the name, type, display name, description and ``DependsOn`` is compiled, so its
  ``Get`` references are dependencies), run as a stub that succeeds.

Every step may have ``DependsOn``, ``DisplayName`` (``[A-Za-z0-9-_]{1,64}``, as the schema says) and
``Description``; Callback steps also ``CacheConfig`` (accepted, never used).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from callback_worker.emulator.conditions import Condition, compile_conditions
from callback_worker.emulator.durations import parse_duration
from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.expressions import Const, Expr, Namespace, Reference, compile_value
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
    FOR_EACH = "ForEach"
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
class ForEachSpec:
    """What a ForEach step runs: its body steps, at most ``max_concurrency`` children at once, the selector."""

    body: tuple[StepSpec, ...]
    max_concurrency: int
    #: ``(pick, body step, member)`` of the ``Selector``, e.g. ``("MaxBy", "Score", "OutputParameters['score']")``.
    selector: tuple[str, str, str] | None = None


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
    for_each: ForEachSpec | None = None
    #: A cached stub type's ``CacheConfig``: ``(enabled, ExpireAfter)``.
    cache: tuple[bool, str | None] = (False, None)

    def output(self, name: str) -> OutputSpec | None:
        """The declared output called ``name``, if any."""
        return next((output for output in self.outputs if output.name == name), None)

    def references(self) -> Iterator[Reference]:
        """Every ``Get`` the step reads."""
        yield from self.arguments.references()
        yield from self.queue_url.references()
        for condition in self.conditions:
            yield from condition.references()
        if self.for_each is not None:
            siblings = {step.name for step in self.for_each.body}
            for step in self.for_each.body:
                for reference in step.references():
                    if not (reference.namespace is Namespace.STEPS and reference.name in siblings):
                        yield reference


def parse_steps(nodes: list[JSONValue], *, stubs: bool) -> list[StepSpec]:
    """Every step of ``Steps``, branches flattened after their Condition step; names must be unique."""
    steps = _flatten(nodes, "Steps", stubs, None)
    body = [child for step in steps if step.for_each is not None for child in step.for_each.body]
    check_unique((step.name for step in [*steps, *body]), "step")
    for step in steps:
        if any(re.fullmatch(rf"{re.escape(child.name)}-[0-9]+", step.name) for child in body):
            raise DefinitionError(f"step {step.name!r}: the name is that of a ForEach body step's child step")
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
    if step_type == "ForEach":
        check_keys(item, _ARGUMENTS_KEYS, where)
        return _for_each(item, common, where, stubs)
    if stubs and isinstance(step_type, str) and step_type in STUB_TYPES:
        members = {key: value for key, value in item.items() if key not in _COMMON_KEYS}
        cache = _cache_config(item.get("CacheConfig"), where) if STUB_TYPES[step_type].cached else (False, None)
        return replace(common, arguments=compile_value(members, where), cache=cache)
    raise DefinitionError(_unsupported(where, step_type, stubs))


def _unsupported(where: str, step_type: JSONValue, stubs: bool) -> str:
    runs = "'Callback', 'Condition', 'Fail' and 'ForEach'"
    stubbed = ", ".join(repr(name) for name in sorted(STUB_TYPES))
    if stubs:
        return (
            f"{where} has Type {step_type!r}, which is not supported: the step types that run here are {runs}, "
            f"and as stubs {stubbed}"
        )
    hint = " (start the emulator with --stub-steps to run it as a stub)" if step_type in STUB_TYPES else ""
    return f"{where} has Type {step_type!r}, which is not supported: only {runs} steps can run here{hint}"


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


_MAX_LITERAL_ITEMS = 100
_FOR_EACH_KEYS = frozenset({"IterableItems", "MaxConcurrency", "Selector", "ForEachBody"})
_SELECTOR_FIELD = re.compile(r"IterationOutput\.([A-Za-z0-9\-_]+)\.(.+)")


def _for_each(item: dict[str, JSONValue], common: StepSpec, where: str, stubs: bool) -> StepSpec:
    arguments = as_object(item.get("Arguments"), f"{where}, Arguments")
    check_keys(arguments, _FOR_EACH_KEYS, f"{where}, Arguments")
    items = _iterable_items(arguments.get("IterableItems"), f"{where}, Arguments.IterableItems")
    concurrency = arguments.get("MaxConcurrency")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 50:
        raise DefinitionError(f"{where}, Arguments.MaxConcurrency: must be an integer from 1 to 50")
    body = [
        _parse_step(node, f"{where}, ForEachBody[{index}]", stubs)
        for index, node in enumerate(as_list(arguments, "ForEachBody", where))
    ]
    if not body:
        raise DefinitionError(f"{where}: 'ForEachBody' must list at least one step")
    for step in body:
        if step.kind in (StepKind.CONDITION, StepKind.FAIL, StepKind.FOR_EACH):
            raise DefinitionError(f"{where}: a {step.type} step cannot be in a ForEach body (step {step.name!r})")
    selector = _selector(arguments.get("Selector"), where, {step.name for step in body})
    spec = ForEachSpec(tuple(body), concurrency, selector)
    return replace(
        common, kind=StepKind.FOR_EACH, arguments=compile_value(items, f"{where}, IterableItems"), for_each=spec
    )


def _iterable_items(items: JSONValue, where: str) -> JSONValue:
    """``IterableItems`` as the service takes it — a property reference (``{"Get": ...}``, ``Std:Join``...) that
    resolves to a JSON list at run time — or, beyond the service, a literal list of 1 to 100 items."""
    if isinstance(items, list) and not 1 <= len(items) <= _MAX_LITERAL_ITEMS:
        raise DefinitionError(
            f"{where}: a literal list must hold 1 to {_MAX_LITERAL_ITEMS} items, not {len(items)} (the service takes "
            "only a property reference, such as a parameter or a step's output, resolving to a JSON list at run time; "
            "a literal list is the emulator's shorthand)"
        )
    if not isinstance(items, dict | list):
        raise DefinitionError(
            f"{where}: must be a property reference, such as a parameter or a step's output, resolving to a JSON list "
            f"at run time, as the service requires; a literal value cannot resolve to a list (got {items!r})"
        )
    return items


def _selector(node: JSONValue, where: str, body: set[str]) -> tuple[str, str, str] | None:
    if node is None:
        return None
    selector = as_object(node, f"{where}, Selector")
    check_keys(selector, frozenset({"Pick", "Field"}), f"{where}, Selector")
    pick = selector.get("Pick")
    field = selector.get("Field")
    target = field.get("Get") if isinstance(field, dict) else None
    match = _SELECTOR_FIELD.fullmatch(target) if isinstance(target, str) else None
    if pick not in ("MaxBy", "MinBy") or match is None or match[1] not in body:
        raise DefinitionError(
            f"{where}, Selector: needs 'Pick' (MaxBy or MinBy) and 'Field' "
            "{'Get': 'IterationOutput.<body step>.<member>'} naming a body step of this ForEach step"
        )
    return str(pick), match[1], match[2]


def _cache_config(node: JSONValue, where: str) -> tuple[bool, str | None]:
    _check_cache_config(node, where)
    if not isinstance(node, dict):
        return False, None
    expire = node.get("ExpireAfter")
    if expire is not None and not isinstance(expire, str):
        raise DefinitionError(f"{where}, CacheConfig.ExpireAfter: must be a string")
    if expire is not None:
        parse_duration(expire, f"{where}, CacheConfig")
    return bool(node.get("Enabled", False)), expire


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
