"""Small checks on the JSON nodes of a pipeline definition, each raising :class:`DefinitionError` naming where."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.values import JSONValue

#: Step names and, in the definition schema, display names.
NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")


def check_keys(node: Mapping[str, JSONValue], allowed: frozenset[str], where: str) -> None:
    """Refuse keys outside ``allowed``."""
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise DefinitionError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def check_unique(names: Iterable[str], kind: str) -> None:
    """Refuse a name used twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"the {kind} name {name!r} is used more than once")
        seen.add(name)


def as_object(value: JSONValue, where: str) -> dict[str, JSONValue]:
    """``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: must be a JSON object")
    return value


def as_list(node: Mapping[str, JSONValue], key: str, where: str) -> list[JSONValue]:
    """``node[key]`` if it is an array (an absent key is an empty one)."""
    value = node.get(key, [])
    if not isinstance(value, list):
        raise DefinitionError(f"{where}: '{key}' must be an array")
    return value


def optional_text(
    node: Mapping[str, JSONValue], key: str, where: str, pattern: re.Pattern[str] | None = None
) -> str | None:
    """``node[key]`` if it is a string (matching ``pattern`` when given), ``None`` if absent."""
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DefinitionError(f"{where}.{key}: must be a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise DefinitionError(f"{where}.{key}: {value!r} does not match {pattern.pattern}")
    return value
