"""Inputs at the edges: numbers JSON cannot carry back, deep nesting, and what the definition schema refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callback_worker.emulator.definition import parse_definition
from callback_worker.emulator.errors import DefinitionError, ValidationError
from callback_worker.emulator.values import ValueType, parse_typed
from tests.unit.test_emulator_control_flow import Harness, callback, make_harness

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


def document(steps: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Steps": steps or [callback("A")], **top}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def with_argument(text: str) -> str:
    """A definition whose step A has the argument ``x`` written as ``text`` (JSON text, not a value)."""
    return json.dumps(document([callback("A", Arguments={"x": 1})])).replace('"x": 1}', f'"x": {text}}}')


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (with_argument("1e999"), "too large"),
        (with_argument("9" * 5000), "digits"),
        (with_argument("[" * 1000 + "1" + "]" * 1000), "nested deeper than 100"),
        (with_argument("[" * 200 + "1" + "]" * 200), "nested deeper than 100"),
        (json.dumps(document([callback("A", DisplayName="Prepare data")])), "DisplayName"),
        (json.dumps(document(Parameters=[{"Name": "P" * 65, "Type": "String"}])), "[A-Za-z0-9-_]{1,64}"),
        (json.dumps(document(Metadata={"owner": 5})), "Metadata.owner: must be a string"),
        (json.dumps(document(Metadata={"bad key": "x"})), "Metadata: the key 'bad key'"),
        (
            json.dumps(document(Parameters=[{"Name": "F", "Type": "Float", "DefaultValue": 1}])).replace(
                ": 1}", ": 1e999}"
            ),
            "too large",
        ),
    ],
)
def test_definitions_json_cannot_carry_or_the_schema_refuses_are_validation_errors(text: str, fragment: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text)
    assert raised.value.code == "ValidationException"
    assert fragment in raised.value.message


def test_a_definition_without_version_is_accepted_as_the_schema_allows() -> None:
    spec = parse_definition(json.dumps({"Steps": [callback("A")], "Metadata": {"owner": "ml-team"}}))
    assert [step.name for step in spec.steps] == ["A"]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    spec = parse_definition(json.dumps(document([callback("A", Arguments={"x": nested(95)})])))
    assert spec.steps[0].name == "A"


@pytest.mark.parametrize("text", ["1e999", "-1e999", "1E400"])
def test_a_float_that_would_be_infinite_does_not_parse(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid Float"):
        parse_typed(text, ValueType.FLOAT)


async def test_a_float_parameter_of_1e999_is_refused_at_start() -> None:
    harness = await make_harness()
    parameters = [{"Name": "Rate", "Type": "Float", "DefaultValue": 0.1}]
    name = harness.create([callback("A", Arguments={"rate": {"Get": "Parameters.Rate"}})], Parameters=parameters)
    with pytest.raises(ValidationError, match="not a valid Float"):
        harness.operations.start_pipeline_execution(
            {
                "PipelineName": name,
                "ClientRequestToken": "t" * 32,
                "PipelineParameters": [{"Name": "Rate", "Value": "1e999"}],
            }
        )
    assert harness.queue.messages == []


async def test_a_float_output_of_1e999_fails_the_step_and_never_reaches_a_queue() -> None:
    harness: Harness = await make_harness()
    producer = callback("A", {"score": "Float"})
    consumer = callback("B", Arguments={"score": {"Get": "Steps.A.OutputParameters['score']"}})
    execution = await harness.run([producer, consumer])
    await harness.answer(execution, "A", score="1e999")
    run = execution.steps["A"]
    assert run.status == "Failed"
    assert run.failure_reason == "output parameter 'score': '1e999' is not a valid Float"
    assert "B" not in execution.steps
    assert len(harness.queue.messages) == 1
    await harness.engine.aclose()
