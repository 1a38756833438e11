"""The ``Conditions`` of a Condition step, as the SageMaker Python SDK writes them, compiled and evaluated.

- ``{"Type": "Equals" | "GreaterThan" | "GreaterThanOrEqualTo" | "LessThan" | "LessThanOrEqualTo",
  "LeftValue": v, "RightValue": v}``;
- ``{"Type": "In", "QueryValue": v, "Values": [v, ...]}``;
- ``{"Type": "Not", "Condition": c}`` and ``{"Type": "Or", "Conditions": [c, ...]}``.

Each ``v`` is any definition value (:mod:`emulator.expressions`): a constant, a ``Get`` of a parameter, an
execution variable, a callback output or a stubbed property, ``Std:Join``, ``Std:JsonGet``. A step's
conditions all hold (logical AND) for its outcome to be true.

Comparisons: numbers compare as numbers (``1 == 1.0``; booleans are not numbers), strings with strings;
``Equals`` and ``In`` of values of different kinds are false; ordering values of different kinds fails the
Condition step with a reason naming both values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.expressions import Context, EvaluationError, Expr, Reference, compile_value
from callback_worker.emulator.values import JSONValue

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
CONDITION_TYPES = ("Equals", *_ORDERINGS, "In", "Not", "Or")


class Condition(Protocol):
    """A compiled condition."""

    def holds(self, context: Context) -> bool:
        """Whether the condition is true for this execution now."""
        ...

    def references(self) -> Iterator[Reference]:
        """Every ``Get`` inside."""
        ...


def _kind(value: JSONValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _equal(left: JSONValue, right: JSONValue) -> bool:
    return _kind(left) == _kind(right) and left == right


@dataclass(frozen=True)
class Comparison:
    """``Equals`` or an ordering of ``LeftValue`` and ``RightValue``."""

    type: str
    left: Expr
    right: Expr

    def holds(self, context: Context) -> bool:
        left, right = self.left.evaluate(context), self.right.evaluate(context)
        if self.type == "Equals":
            return _equal(left, right)
        if _kind(left) != _kind(right) or _kind(left) not in ("number", "str"):
            raise EvaluationError(f"{self.type} cannot compare {left!r} with {right!r}")
        return _ORDERINGS[self.type](left, right)

    def references(self) -> Iterator[Reference]:
        yield from self.left.references()
        yield from self.right.references()


@dataclass(frozen=True)
class In:
    """``In``: ``QueryValue`` equals one of ``Values``."""

    query: Expr
    values: tuple[Expr, ...]

    def holds(self, context: Context) -> bool:
        query = self.query.evaluate(context)
        return any(_equal(query, value.evaluate(context)) for value in self.values)

    def references(self) -> Iterator[Reference]:
        yield from self.query.references()
        for value in self.values:
            yield from value.references()


@dataclass(frozen=True)
class Not:
    """``Not``: the negation of ``Condition``."""

    condition: Condition

    def holds(self, context: Context) -> bool:
        return not self.condition.holds(context)

    def references(self) -> Iterator[Reference]:
        return self.condition.references()


@dataclass(frozen=True)
class Or:
    """``Or``: at least one of ``Conditions``."""

    conditions: tuple[Condition, ...]

    def holds(self, context: Context) -> bool:
        return any(condition.holds(context) for condition in self.conditions)

    def references(self) -> Iterator[Reference]:
        for condition in self.conditions:
            yield from condition.references()


def compile_conditions(node: JSONValue, where: str) -> tuple[Condition, ...]:
    """Compile a ``Conditions`` array found at ``where``; :class:`DefinitionError` says what is wrong."""
    if not isinstance(node, list):
        raise DefinitionError(f"{where}: must be an array of conditions")
    return tuple(compile_condition(item, f"{where}[{index}]") for index, item in enumerate(node))


def _members(node: dict[str, JSONValue], required: tuple[str, ...], where: str) -> list[JSONValue]:
    allowed = {"Type", *required}
    if set(node) != allowed:
        raise DefinitionError(f"{where}: a {node['Type']} condition takes exactly {sorted(allowed)}")
    return [node[key] for key in required]


def compile_condition(node: JSONValue, where: str) -> Condition:
    """Compile one condition object."""
    if not isinstance(node, dict) or node.get("Type") not in CONDITION_TYPES:
        kind = node.get("Type") if isinstance(node, dict) else None
        raise DefinitionError(f"{where}: condition type {kind!r} is not one of {', '.join(CONDITION_TYPES)}")
    kind = str(node["Type"])
    if kind == "Not":
        (inner,) = _members(node, ("Condition",), where)
        return Not(compile_condition(inner, f"{where}.Condition"))
    if kind == "Or":
        (inner,) = _members(node, ("Conditions",), where)
        return Or(compile_conditions(inner, f"{where}.Conditions"))
    if kind == "In":
        query, values = _members(node, ("QueryValue", "Values"), where)
        if not isinstance(values, list):
            raise DefinitionError(f"{where}.Values: must be an array")
        compiled = (compile_value(value, f"{where}.Values[{index}]") for index, value in enumerate(values))
        return In(compile_value(query, f"{where}.QueryValue"), tuple(compiled))
    left, right = _members(node, ("LeftValue", "RightValue"), where)
    return Comparison(kind, compile_value(left, f"{where}.LeftValue"), compile_value(right, f"{where}.RightValue"))
