"""Typed values of pipeline parameters and callback outputs, and the JSON values definitions are made of.

Pipeline parameters and callback outputs are declared as String, Integer, Float or Boolean. Values arrive as
text (``PipelineParameters`` at start, ``OutputParameters`` of ``SendPipelineExecutionStepSuccess``) and are
converted to their declared type, so that a ``Get`` of them puts a JSON string, number or boolean into a
step's arguments.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import TypeAlias

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
Scalar: TypeAlias = bool | int | float | str

#: Longer integers cannot be turned back into text by Python (its int/str conversion limit).
MAX_INTEGER_DIGITS = 4000
#: Deepest nesting of arrays and objects accepted in a definition or a request body.
MAX_DEPTH = 100

_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ValueType(enum.StrEnum):
    """The declared type of a parameter or callback output, spelled as in pipeline definitions."""

    STRING = "String"
    INTEGER = "Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"


def parse_typed(text: str, value_type: ValueType) -> Scalar:
    """Convert ``text`` to ``value_type``.

    Integer: optional sign and decimal digits (at most :data:`MAX_INTEGER_DIGITS`). Float: decimal or exponent
    notation, finite (``1e999`` is refused: JSON has no infinity). Boolean:
    ``true`` or ``false`` in any letter case. String: the text itself. Raises :class:`ValueError` with a
    message naming the expected type when the text does not parse.
    """
    if value_type is ValueType.STRING:
        return text
    stripped = text.strip()
    if value_type is ValueType.INTEGER and _INTEGER.fullmatch(stripped) and len(stripped) <= MAX_INTEGER_DIGITS:
        return int(stripped)
    if value_type is ValueType.FLOAT and _FLOAT.fullmatch(stripped) and math.isfinite(float(stripped)):
        return float(stripped)
    if value_type is ValueType.BOOLEAN and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    raise ValueError(f"{text!r} is not a valid {value_type.value} value")


def check_typed(value: JSONValue, value_type: ValueType) -> Scalar:
    """Check that a JSON value from a definition (a ``DefaultValue``) has ``value_type``; return it.

    Integers are accepted for Float (and returned as float); booleans are never numbers.
    Raises :class:`ValueError` otherwise.
    """
    if value_type is ValueType.STRING and isinstance(value, str):
        return value
    if value_type is ValueType.BOOLEAN and isinstance(value, bool):
        return value
    if not isinstance(value, bool):
        if value_type is ValueType.INTEGER and isinstance(value, int):
            return value
        if value_type is ValueType.FLOAT and isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    raise ValueError(f"{json.dumps(value)} is not a {value_type.value}")


def to_text(value: JSONValue) -> str:
    """The text of a value inside ``Std:Join`` and ``ListPipelineParametersForExecution``.

    Strings as they are, booleans ``true``/``false``, numbers in decimal, null as ``null``,
    arrays and objects as compact JSON.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def load_json(text: str | bytes) -> JSONValue:
    """Parse JSON text into values the emulator can always serialize again.

    Raises :class:`ValueError` (with a message for the client) for invalid JSON, for ``NaN``/``Infinity`` and
    numbers that overflow to them (``1e999``), for integers longer than :data:`MAX_INTEGER_DIGITS` digits, and
    for arrays/objects nested deeper than :data:`MAX_DEPTH`.
    """
    try:
        value: JSONValue = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_int)
    except RecursionError:
        raise ValueError(f"arrays and objects are nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    _check_depth(value)
    return value


def _reject_constant(name: str) -> JSONValue:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large (it would be infinite)")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _check_depth(value: JSONValue) -> None:
    """Refuse nesting deeper than MAX_DEPTH (walked without recursion)."""
    pending: list[tuple[JSONValue, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"arrays and objects are nested deeper than {MAX_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)
