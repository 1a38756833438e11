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

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
Scalar: TypeAlias = bool | int | float | str

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

    Integer: optional sign and decimal digits. Float: decimal or exponent notation (finite). Boolean:
    ``true`` or ``false`` in any letter case. String: the text itself. Raises :class:`ValueError` with a
    message naming the expected type when the text does not parse.
    """
    if value_type is ValueType.STRING:
        return text
    stripped = text.strip()
    if value_type is ValueType.INTEGER and _INTEGER.fullmatch(stripped):
        return int(stripped)
    if value_type is ValueType.FLOAT and _FLOAT.fullmatch(stripped):
        return float(stripped)
    if value_type is ValueType.BOOLEAN and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    raise ValueError(f"{text!r} is not a valid {value_type.value} value")


def check_typed(value: JsonValue, value_type: ValueType) -> Scalar:
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


def to_text(value: JsonValue) -> str:
    """The text of a value inside ``Std:Join`` and ``ListPipelineParametersForExecution``.

    Strings as they are, booleans ``true``/``false``, numbers in decimal, null as ``null``,
    arrays and objects as compact JSON.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
