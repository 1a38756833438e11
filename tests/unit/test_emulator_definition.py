"""Pipeline definitions and their expressions, without a server."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callback_worker.emulator.definition import PipelineSpec, parse_definition
from callback_worker.emulator.errors import DefinitionError, ValidationError
from callback_worker.emulator.expressions import Namespace, compile_value
from callback_worker.emulator.values import JSONValue, Scalar, ValueType, check_typed, parse_typed, to_text

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


def step(name: str, **fields: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "Callback", "SqsQueueUrl": QUEUE, **fields}


def definition(steps: list[dict[str, Any]], **top: Any) -> str:
    return json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "Steps": steps, **top})


def refused(text: str) -> str:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text)
    assert raised.value.code == "ValidationException"
    assert raised.value.message.startswith("Invalid pipeline definition: ")
    return raised.value.message


class FixedContext:
    """Expression values for one imaginary execution."""

    def __init__(self) -> None:
        self.parameters: dict[str, Scalar] = {"Size": 5, "Flag": True, "Ratio": 0.5, "Text": "t"}
        self.outputs: dict[tuple[str, str], Scalar] = {("A", "count"): 3, ("A", "label"): "x"}

    def parameter(self, name: str) -> Scalar:
        return self.parameters[name]

    def step_output(self, step: str, output: str) -> Scalar:
        return self.outputs[(step, output)]

    def step_property(self, step: str, prop: str) -> JSONValue:
        return f"{step}.{prop}"

    def json_document(self, uri: str) -> JSONValue:
        return {"uri": uri}

    def execution_variable(self, name: str) -> str:
        return f"<{name}>"

    def experiment_property(self, name: str) -> str:
        return f"[{name}]"

    def current_item(self, path: str) -> JSONValue:
        return {"name": "item-0"} if not path else "item-0"


def test_references_are_dependencies_and_order_follows_them() -> None:
    spec = parse_definition(
        definition(
            [
                step("C", DependsOn=["B"]),
                step("B", Arguments={"n": {"Get": "Steps.A.OutputParameters['count']"}}),
                step("A", OutputParameters=[{"OutputName": "count", "OutputType": "Integer"}]),
                step("D"),
            ]
        )
    )
    assert [s.name for s in spec.steps] == ["A", "D", "B", "C"]
    assert spec.step("B").depends_on == {"A"}
    assert spec.step("C").depends_on == {"B"}
    assert spec.step("A").output("count") is not None
    assert spec.step("A").output("other") is None


def test_default_experiment_config_reads_pipeline_name_and_execution_id() -> None:
    spec = parse_definition(definition([step("A")]))
    assert spec.experiment is not None
    context = FixedContext()
    assert spec.experiment.experiment_name.evaluate(context) == "<PipelineName>"
    assert spec.experiment.trial_name.evaluate(context) == "<PipelineExecutionId>"
    assert parse_definition(definition([step("A")], PipelineExperimentConfig=None)).experiment is None


def test_arguments_keep_json_types_and_resolve_expressions() -> None:
    arguments: JSONValue = {
        "int": 1,
        "float": 1.5,
        "bool": False,
        "null": None,
        "nested": {"list": [{"Get": "Parameters.Size"}, "s"], "deep": {"flag": {"Get": "Parameters.Flag"}}},
        "output": {"Get": 'Steps.A.OutputParameters["count"]'},
        "join": {
            "Std:Join": {
                "On": "-",
                "Values": [
                    {"Get": "Parameters.Ratio"},
                    {"Get": "Parameters.Flag"},
                    {"Get": "Execution.PipelineExecutionArn"},
                    {"Get": "PipelineExperimentConfig.TrialName"},
                    7,
                    None,
                ],
            }
        },
        "joinWithoutOn": {"Std:Join": {"Values": ["a", "b"]}},
    }
    expr = compile_value(arguments, "Arguments")
    assert expr.evaluate(FixedContext()) == {
        "int": 1,
        "float": 1.5,
        "bool": False,
        "null": None,
        "nested": {"list": [5, "s"], "deep": {"flag": True}},
        "output": 3,
        "join": "0.5-true-<PipelineExecutionArn>-[TrialName]-7-null",
        "joinWithoutOn": "ab",
    }
    namespaces = [(reference.namespace, reference.name) for reference in expr.references()]
    assert (Namespace.STEPS, "A") in namespaces
    assert (Namespace.EXPERIMENT, "TrialName") in namespaces


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("{", ["not valid JSON"]),
        ("[]", ["must be a JSON object"]),
        ('{"Version": "2020-12-01", "Steps": [], "Extra": 1}', ["unknown keys ['Extra']"]),
        ('{"Version": "2019-01-01", "Steps": []}', ["'Version' must be '2020-12-01'"]),
        ('{"Version": "2020-12-01", "Steps": []}', ["at least one step"]),
        ('{"Version": "2020-12-01", "Steps": {}}', ["'Steps' must be an array"]),
        ('{"Version": "2020-12-01", "Steps": [{"Name": "A", "Type": "Callback", "SqsQueueUrl": NaN}]}', ["NaN"]),
        (definition([{"Name": "Train", "Type": "Training", "Arguments": {}}]), ["'Train'", "'Training'"]),
        (definition([{"Name": "bad name!", "Type": "Callback"}]), ["Steps[0].Name"]),
        (definition([{"Name": "A", "Type": "Callback"}]), ["'SqsQueueUrl' is required"]),
        (definition([step("A", SqsQueueUrl="")]), ["non-empty string"]),
        (definition([step("A", Retry=3)]), ["step 'A'", "unknown keys ['Retry']"]),
        (definition([step("A"), step("A")]), ["'A' is used more than once"]),
        (definition([step("A", DependsOn=["Z"])]), ["DependsOn names 'Z'"]),
        (definition([step("A", DependsOn=["A"])]), ["cannot depend on itself"]),
        (definition([step("A", DependsOn="B")]), ["array of step names"]),
        (definition([step("A", DependsOn=["B"]), step("B", DependsOn=["A"])]), ["cycle"]),
        (definition([step("A", Arguments=[1])]), ["Arguments: must be a JSON object"]),
        (definition([step("A", Arguments={"x": {"Get": "Parameters.Nope"}})]), ["parameter 'Nope' is not defined"]),
        (definition([step("A", Arguments={"x": {"Get": "Steps.Z.OutputParameters['o']"}})]), ["'Z' does not exist"]),
        (
            definition([step("A", Arguments={"x": {"Get": "Steps.B.OutputParameters['o']"}}), step("B")]),
            ["declares no output 'o'"],
        ),
        (
            definition(
                [
                    step(
                        "A",
                        OutputParameters=[{"OutputName": "o"}],
                        Arguments={"x": {"Get": "Steps.A.OutputParameters['o']"}},
                    )
                ]
            ),
            ["cannot read its own outputs"],
        ),
        (definition([step("A", Arguments={"x": {"Get": "Steps.B.Properties.X"}}), step("B")]), ["only Steps.B"]),
        (definition([step("A", Arguments={"x": {"Get": "Execution.Nope"}})]), ["cannot resolve"]),
        (definition([step("A", Arguments={"x": {"Get": 5}})]), ["'Get' takes a string"]),
        (definition([step("A", Arguments={"x": {"Get": "Parameters.P", "y": 1}})]), ["only key"]),
        (definition([step("A", Arguments={"x": {"Std:Select": {}}})]), ["'Std:Select' is not supported"]),
        (definition([step("A", Arguments={"x": {"Std:JsonGet": {}}})]), ["Std:JsonGet: takes an object"]),
        (definition([step("A", Arguments={"x": {"Std:Join": {"On": 1, "Values": []}}})]), ["On: must be a string"]),
        (definition([step("A", Arguments={"x": {"Std:Join": {"Values": "ab"}}})]), ["'Values' array"]),
        (definition([step("A", OutputParameters=[{"OutputName": "o", "OutputType": "Date"}])]), ["'Date'"]),
        (definition([step("A", OutputParameters=[{"OutputType": "String"}])]), ["'OutputName'"]),
        (
            definition([step("A", OutputParameters=[{"OutputName": "o"}, {"OutputName": "o"}])]),
            ["'o' is used more than once"],
        ),
        (definition([step("A", CacheConfig={"Enabled": "yes"})]), ["CacheConfig.Enabled"]),
        (definition([step("A", DisplayName=5)]), ["DisplayName: must be a string"]),
        (definition([step("A")], Parameters=[{"Name": "P", "Type": "Integer", "DefaultValue": "5"}]), ["'P'"]),
        (definition([step("A")], Parameters=[{"Name": "P", "Type": "Integer", "DefaultValue": True}]), ["'P'"]),
        (definition([step("A")], Parameters=[{"Name": "P", "Type": "Text"}]), ["'Text'"]),
        (definition([step("A")], Parameters=[{"Name": "P"}, {"Name": "P"}]), ["parameter name 'P'"]),
        (
            definition([step("A")], Parameters=[{"Name": "P", "DefaultValue": "c", "EnumValues": ["a", "b"]}]),
            ["not one of its EnumValues"],
        ),
        (
            definition(
                [step("A")], PipelineExperimentConfig={"ExperimentName": {"Get": "Steps.A.OutputParameters['o']"}}
            ),
            ["only parameters and execution variables"],
        ),
        (
            definition([step("A")], PipelineExperimentConfig={"TrialName": {"Get": "Parameters.Missing"}}),
            ["parameter 'Missing' is not defined"],
        ),
    ],
)
def test_bad_definitions_are_refused_with_a_clear_message(text: str, fragments: list[str]) -> None:
    message = refused(text)
    for fragment in fragments:
        assert fragment in message


def parameters_spec(*parameters: dict[str, Any]) -> PipelineSpec:
    return parse_definition(definition([step("A")], Parameters=list(parameters)))


def test_parameters_take_overrides_converted_to_their_type() -> None:
    spec = parameters_spec(
        {"Name": "I", "Type": "Integer", "DefaultValue": 1},
        {"Name": "F", "Type": "Float", "DefaultValue": 2},
        {"Name": "B", "Type": "Boolean", "DefaultValue": True},
        {"Name": "S", "DefaultValue": "s"},
    )
    assert spec.resolve_parameters([]) == {"I": 1, "F": 2.0, "B": True, "S": "s"}
    given_values = [{"Name": "I", "Value": "-3"}, {"Name": "F", "Value": "1e-2"}, {"Name": "B", "Value": "False"}]
    assert spec.resolve_parameters(given_values) == {"I": -3, "F": 0.01, "B": False, "S": "s"}


REQ = {"Name": "Req", "Value": "r"}


@pytest.mark.parametrize(
    ("given_values", "message"),
    [
        (
            [REQ, {"Name": "X", "Value": "1"}],
            "Parameter 'X' is not defined in the pipeline definition (defined: I, Mode, Req)",
        ),
        ([REQ, {"Name": "I", "Value": "1.5"}], "Parameter 'I': '1.5' is not a valid Integer value"),
        ([REQ, {"Name": "Mode", "Value": "medium"}], "Parameter 'Mode': 'medium' is not one of its EnumValues"),
        ([REQ, {"Name": "I", "Value": "1"}, {"Name": "I", "Value": "2"}], "Parameter 'I' is given more than once"),
        ([], "Parameter 'Req' has no DefaultValue and was not given in PipelineParameters"),
    ],
)
def test_parameters_refuse_what_does_not_fit(given_values: list[dict[str, str]], message: str) -> None:
    spec = parameters_spec(
        {"Name": "I", "Type": "Integer", "DefaultValue": 1},
        {"Name": "Mode", "Type": "String", "DefaultValue": "fast", "EnumValues": ["fast", "slow"]},
        {"Name": "Req", "Type": "String"},
    )
    assert spec.resolve_parameters([REQ]) == {"I": 1, "Mode": "fast", "Req": "r"}
    with pytest.raises(ValidationError) as raised:
        spec.resolve_parameters(given_values)
    assert raised.value.message.startswith(message)


@given(st.integers())
def test_integers_round_trip_through_text(value: int) -> None:
    assert parse_typed(str(value), ValueType.INTEGER) == value
    assert parse_typed(to_text(value), ValueType.INTEGER) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_through_text(value: float) -> None:
    assert parse_typed(to_text(value), ValueType.FLOAT) == value


@pytest.mark.parametrize(
    ("text", "value_type", "expected"),
    [
        ("true", ValueType.BOOLEAN, True),
        ("TRUE", ValueType.BOOLEAN, True),
        (" false ", ValueType.BOOLEAN, False),
        ("+7", ValueType.INTEGER, 7),
        (".5", ValueType.FLOAT, 0.5),
        ("3", ValueType.FLOAT, 3.0),
        ("  x ", ValueType.STRING, "  x "),
    ],
)
def test_text_parses_as_its_declared_type(text: str, value_type: ValueType, expected: Scalar) -> None:
    value = parse_typed(text, value_type)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "value_type"),
    [
        ("abc", ValueType.INTEGER),
        ("1.0", ValueType.INTEGER),
        ("", ValueType.INTEGER),
        ("1e5", ValueType.INTEGER),
        ("nan", ValueType.FLOAT),
        ("inf", ValueType.FLOAT),
        ("1,5", ValueType.FLOAT),
        ("yes", ValueType.BOOLEAN),
        ("1", ValueType.BOOLEAN),
    ],
)
def test_text_that_does_not_parse_is_refused(text: str, value_type: ValueType) -> None:
    with pytest.raises(ValueError, match=f"is not a valid {value_type.value}"):
        parse_typed(text, value_type)


@pytest.mark.parametrize(
    ("value", "value_type", "ok"),
    [
        (1, ValueType.INTEGER, True),
        (True, ValueType.INTEGER, False),
        (1.0, ValueType.INTEGER, False),
        (1, ValueType.FLOAT, True),
        (math.inf, ValueType.FLOAT, False),
        (False, ValueType.BOOLEAN, True),
        (0, ValueType.BOOLEAN, False),
        ("s", ValueType.STRING, True),
        (1, ValueType.STRING, False),
    ],
)
def test_default_values_must_have_the_declared_json_type(value: JSONValue, value_type: ValueType, ok: bool) -> None:
    if ok:
        assert check_typed(value, value_type) == value
    else:
        with pytest.raises(ValueError, match=f"is not a {value_type.value}"):
            check_typed(value, value_type)
