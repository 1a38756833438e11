"""Request validation driven by botocore's SageMaker service model.

botocore checks only required members, JSON types and *minimum* lengths before sending; the service also
enforces maximum lengths, list sizes, numeric ranges, enums and patterns. This module enforces every one of
those constraints from the same model the clients use, and words its messages the way the service does::

    1 validation error detected: Value 'abc!EFGH12' at 'callbackToken' failed to satisfy constraint:
    Member must satisfy regular expression pattern: [a-zA-Z0-9]+

A member of the wrong JSON type is a ``SerializationException`` (the service cannot even deserialize it);
a broken constraint is a ``ValidationException`` listing every broken constraint of the request. Members
the model does not know are ignored, as the service ignores them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from botocore.loaders import create_loader
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

from callback_worker.emulator.errors import SerializationError, ValidationError

_SHOWN_VALUE_CHARS = 100


@functools.cache
def sagemaker_model() -> ServiceModel:
    """The SageMaker service model shipped with the installed botocore (loaded once per process)."""
    loader = create_loader()
    return ServiceModel(loader.load_service_model("sagemaker", "service-2"), service_name="sagemaker")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    # The model's patterns are Java regular expressions; the few that Python cannot compile (Unicode
    # classes such as \p{L}) belong to members this emulator never interprets, so they are skipped
    # rather than approximated.
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _render(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if len(text) > _SHOWN_VALUE_CHARS:
        return text[:_SHOWN_VALUE_CHARS] + "..."
    return text


def _member_path(parent: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{parent}.{camel}" if parent else camel


def _json_type(value: object) -> str:
    names: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"),
        ((int, float), "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return "null"


class _Walk:
    """One validation pass over one request; collects constraint violations in ``problems``."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def violation(self, value: object, path: str, constraint: str) -> None:
        self.problems.append(
            f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: Member must {constraint}"
        )

    def visit(self, shape: Shape, value: object, path: str) -> None:
        visitor = _VISITORS.get(shape.type_name)
        if visitor is not None:
            visitor(self, shape, value, path)

    def visit_structure(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type("an object", path or "request", value)
        structure = cast(StructureShape, shape)
        for name in structure.required_members:
            if value.get(name) is None:
                self.problems.append(
                    f"Value null at '{_member_path(path, name)}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in structure.members.items():
            if value.get(name) is not None:
                self.visit(member, value[name], _member_path(path, name))

    def visit_list(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, list):
            raise _wrong_type("an array", path, value)
        self.check_size(shape, value, path)
        member = cast(ListShape, shape).member
        for index, item in enumerate(value, start=1):
            if item is not None:
                self.visit(member, item, f"{path}.{index}.member")

    def visit_map(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type("an object", path, value)
        self.check_size(shape, value, path)
        mapping = cast(MapShape, shape)
        for key, item in value.items():
            self.visit(mapping.key, key, f"{path}.key")
            if item is not None:
                self.visit(mapping.value, item, f"{path}.{key}")

    def visit_string(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, str):
            raise _wrong_type("a string", path, value)
        self.check_size(shape, value, path)
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            self.violation(value, path, f"satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            self.violation(value, path, f"satisfy regular expression pattern: {pattern}")

    def visit_number(self, shape: Shape, value: object, path: str) -> None:
        integral = shape.type_name in ("integer", "long")
        kinds: tuple[type, ...] = (int,) if integral else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise _wrong_type("an integer" if integral else "a number", path, value)
        minimum = shape.metadata.get("min")
        maximum = shape.metadata.get("max")
        if minimum is not None and value < minimum:
            self.violation(value, path, f"have value greater than or equal to {minimum}")
        if maximum is not None and value > maximum:
            self.violation(value, path, f"have value less than or equal to {maximum}")

    def visit_boolean(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, bool):
            raise _wrong_type("a boolean", path, value)

    def check_size(self, shape: Shape, value: str | list[Any] | dict[Any, Any], path: str) -> None:
        minimum = shape.metadata.get("min")
        maximum = shape.metadata.get("max")
        if minimum is not None and len(value) < minimum:
            self.violation(value, path, f"have length greater than or equal to {minimum}")
        if maximum is not None and len(value) > maximum:
            self.violation(value, path, f"have length less than or equal to {maximum}")


def _wrong_type(expected: str, path: str, value: object) -> SerializationError:
    return SerializationError(f"Expected {expected} at '{path}' but found {_json_type(value)}")


# Blobs and documents have no visitor: no operation served here takes one, so they pass as sent.
_VISITORS: dict[str, Callable[[_Walk, Shape, object, str], None]] = {
    "structure": _Walk.visit_structure,
    "list": _Walk.visit_list,
    "map": _Walk.visit_map,
    "string": _Walk.visit_string,
    "integer": _Walk.visit_number,
    "long": _Walk.visit_number,
    "float": _Walk.visit_number,
    "double": _Walk.visit_number,
    "timestamp": _Walk.visit_number,
    "boolean": _Walk.visit_boolean,
}


def validate_request(operation: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` against the input shape of ``operation`` in the SageMaker model.

    Raises :class:`SerializationError` for a member of the wrong JSON type and :class:`ValidationError`
    (message in the service's wording, every violation listed) for broken constraints; returns ``None`` for
    a valid request.
    """
    shape = sagemaker_model().operation_model(operation).input_shape
    if shape is None:
        return
    walk = _Walk()
    walk.visit(shape, dict(params), "")
    if walk.problems:
        count = len(walk.problems)
        noun = "validation error" if count == 1 else "validation errors"
        raise ValidationError(f"{count} {noun} detected: " + "; ".join(walk.problems))
