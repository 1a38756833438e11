"""handlers/echo.py: one output per argument, the routing argument left out, non-scalars as compact JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from callback_worker.handlers.echo import EchoHandler
from callback_worker.worker.handler import CallbackContext, JSONValue
from callback_worker.worker.outcome import Failure, Success, success


def context(arguments: Mapping[str, JSONValue]) -> CallbackContext:
    return CallbackContext(
        token="26vcYbeWsZ",
        pipeline_execution_arn="arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e",
        pipeline_name="p",
        execution_id="e",
        arguments=arguments,
        handler_name="echo",
        message_id="m-1",
    )


@pytest.fixture(autouse=True)
def no_routing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLBACK_WORKER_HANDLER_ARGUMENT", raising=False)


async def test_scalars_are_returned_typed_and_converted_by_the_contract() -> None:
    outputs = await EchoHandler()(context({"s": "text", "i": 5, "f": 2.5, "b": True, "n0": 0}))
    assert outputs == {"s": "text", "i": 5, "f": 2.5, "b": True, "n0": 0}
    assert type(outputs["i"]) is int
    assert success(outputs) == Success((("s", "text"), ("i", "5"), ("f", "2.5"), ("b", "true"), ("n0", "0")))


async def test_lists_objects_and_null_become_compact_json() -> None:
    arguments: dict[str, JSONValue] = {
        "list": [1, "two", None, 3.5, False],
        "object": {"a": {"b": [1, 2]}, "c": "é"},
        "null": None,
        "empty": [],
    }
    outputs = await EchoHandler()(context(arguments))
    assert outputs == {
        "list": '[1,"two",null,3.5,false]',
        "object": '{"a":{"b":[1,2]},"c":"é"}',
        "null": "null",
        "empty": "[]",
    }
    assert {name: json.loads(str(text)) for name, text in outputs.items()} == arguments


async def test_routing_argument_is_left_out() -> None:
    outputs = await EchoHandler()(context({"handler": "echo", "x": "1"}))
    assert outputs == {"x": "1"}


async def test_routing_argument_given_explicitly() -> None:
    outputs = await EchoHandler(routing_argument="route")(context({"route": "echo", "handler": "kept"}))
    assert outputs == {"handler": "kept"}


async def test_routing_argument_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_WORKER_HANDLER_ARGUMENT", "route")
    outputs = await EchoHandler()(context({"route": "echo", "handler": "kept"}))
    assert outputs == {"handler": "kept"}


async def test_no_arguments_no_outputs() -> None:
    assert await EchoHandler()(context({})) == {}


async def test_argument_order_is_kept() -> None:
    outputs = await EchoHandler()(context({"z": 1, "a": 2, "m": 3}))
    assert list(outputs) == ["z", "a", "m"]


async def test_too_long_json_becomes_a_failure_naming_the_argument() -> None:
    outputs = await EchoHandler()(context({"big": list(range(1000))}))
    outcome = success(outputs)
    assert isinstance(outcome, Failure)
    assert "'big'" in outcome.reason
