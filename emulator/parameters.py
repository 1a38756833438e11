"""Pipeline parameters: their declarations in a definition, and their values for one execution.

A parameter is ``{"Name", "Type": String | Integer | Float | Boolean, "DefaultValue", "EnumValues",
"Description"}`` as the pipeline definition schema has it (``Name`` matches ``[A-Za-z0-9-_]{1,64}``, ``Type``
defaults to String). ``StartPipelineExecution`` gives values as text, converted to the declared type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callback_worker.emulator.errors import DefinitionError, ValidationError
from callback_worker.emulator.nodes import as_object, check_keys, check_unique
from callback_worker.emulator.values import JSONValue, Scalar, ValueType, check_typed, parse_typed

_PARAMETER_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_PARAMETER_KEYS = frozenset({"Name", "Type", "DefaultValue", "EnumValues", "Description"})


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


def resolve_parameters(
    parameters: Mapping[str, ParameterSpec], given: Sequence[Mapping[str, str]]
) -> dict[str, Scalar]:
    """Every parameter's value for one execution, from ``PipelineParameters`` ``[{Name, Value}]``.

    Raises :class:`ValidationError` for an unknown or repeated name and for a value that is not of the
    parameter's type.
    """
    texts: dict[str, str] = {}
    for item in given:
        name = item["Name"]
        if name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            raise ValidationError(f"Parameter '{name}' is not defined in the pipeline definition (defined: {known})")
        if name in texts:
            raise ValidationError(f"Parameter '{name}' is given more than once in PipelineParameters")
        texts[name] = item["Value"]
    return {name: spec.value_for(texts.get(name)) for name, spec in parameters.items()}


def parse_parameters(nodes: list[JSONValue]) -> dict[str, ParameterSpec]:
    parameters = [_parse_parameter(node, index) for index, node in enumerate(nodes)]
    check_unique([parameter.name for parameter in parameters], "parameter")
    return {parameter.name: parameter for parameter in parameters}


def _parse_parameter(node: JSONValue, index: int) -> ParameterSpec:
    where = f"Parameters[{index}]"
    item = as_object(node, where)
    check_keys(item, _PARAMETER_KEYS, where)
    name = item.get("Name")
    if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
        raise DefinitionError(f"{where}.Name: must match [A-Za-z0-9-_]{{1,64}}, found {name!r}")
    value_type = value_type_of(item.get("Type", ValueType.STRING.value), f"parameter {name!r}")
    default = item.get("DefaultValue")
    try:
        typed_default = None if default is None else check_typed(default, value_type)
    except ValueError as error:
        raise DefinitionError(f"parameter {name!r}: DefaultValue {error}") from None
    return ParameterSpec(name, value_type, typed_default, _enum_values(item, value_type, name))


def _enum_values(item: Mapping[str, JSONValue], value_type: ValueType, name: str) -> tuple[str, ...] | None:
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


def value_type_of(value: JSONValue, where: str) -> ValueType:
    for member in ValueType:
        if value == member.value:
            return member
    allowed = ", ".join(member.value for member in ValueType)
    raise DefinitionError(f"{where}: type {value!r} is not one of {allowed}")
