"""worker/outcome.py: output conversion per the contract, service limits, and the deterministic request token."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from enum import IntEnum
from typing import Any

import botocore.session
import pytest
from botocore.model import StructureShape
from botocore.validate import validate_parameters
from hypothesis import given
from hypothesis import strategies as st

from callback_worker.config.limits import MAX_FAILURE_REASON
from callback_worker.worker.outcome import (
    TRUNCATION_MARKER,
    Failure,
    Success,
    client_request_token,
    failure,
    output_text,
    success,
)

TOKEN = "26vcYbeWsZ"
OTHER_TOKEN = "26vcYbeWsY"
HEX64 = re.compile(r"[0-9a-f]{64}")


def input_shape(operation: str) -> StructureShape:
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation)
    assert model.input_shape is not None
    return model.input_shape


def failure_reason(outcome: object) -> str:
    assert isinstance(outcome, Failure), outcome
    return outcome.reason


# --- conversion -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("as is", "as is"),
        ("", ""),
        ("  spaced \n", "  spaced \n"),
        ("ünï€ode", "ünï€ode"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-7, "-7"),
        (10**30, "1" + "0" * 30),
        (1.5, "1.5"),
        (-2.0, "-2.0"),
        (0.1, "0.1"),
    ],
)
def test_output_text(value: object, text: str) -> None:
    assert output_text(value) == text


def test_success_converts_in_order() -> None:
    outcome = success({"s": "x", "b": True, "i": 3, "f": 0.25, "z": False})
    assert outcome == Success((("s", "x"), ("b", "true"), ("i", "3"), ("f", "0.25"), ("z", "false")))


def test_empty_outputs_are_a_success() -> None:
    assert success({}) == Success(())


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_reads_back_exactly(value: float) -> None:
    text = output_text(value)
    assert text is not None
    assert float(text) == value
    assert re.fullmatch(r"-?\d+(\.\d+)?(e[+-]\d+)?", text)  # decimal digits; large/small ones in exponent form


@given(st.integers(min_value=-(10**1023) + 1, max_value=10**1024 - 1))
def test_int_text_reads_back_exactly(value: int) -> None:
    text = output_text(value)
    assert text is not None
    assert int(text) == value


def test_number_subclasses_render_as_plain_numbers() -> None:
    # numpy.float64 subclasses float and reprs as "np.float64(1.5)"; the wire must carry "1.5".
    class Float(float):
        def __repr__(self) -> str:
            return f"Float({float(self)})"

        __str__ = __repr__

    class Int(int):
        def __repr__(self) -> str:
            return f"Int({int(self)})"

        __str__ = __repr__

    class Level(IntEnum):
        HIGH = 3

    assert output_text(Float(1.5)) == "1.5"
    assert output_text(Int(7)) == "7"
    assert output_text(Level.HIGH) == "3"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([1, 2], "type list"),
        ({"a": 1}, "type dict"),
        ((1,), "type tuple"),
        (None, "type NoneType"),
        (b"bytes", "type bytes"),
        (Decimal("1.5"), "type Decimal"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
    ],
)
def test_unsendable_values_fail_naming_the_output(value: object, problem: str) -> None:
    reason = failure_reason(success({"fine": "ok", "bad_output": value}))
    assert "'bad_output'" in reason
    assert problem in reason


def test_non_mapping_result_is_a_failure() -> None:
    assert "handler returned list" in failure_reason(success([("a", "1")]))
    assert "handler returned NoneType" in failure_reason(success(None))


def test_fifty_outputs_pass_fifty_one_fail() -> None:
    fifty = {f"o{i}": i for i in range(50)}
    assert isinstance(success(fifty), Success)
    reason = failure_reason(success({**fifty, "o50": 50}))
    assert "51 outputs" in reason
    assert "at most 50" in reason


@pytest.mark.parametrize("length", [1025, 2000])
def test_long_values_fail(length: int) -> None:
    assert isinstance(success({"v": "x" * 1024}), Success)
    reason = failure_reason(success({"v": "x" * length}))
    assert f"'v': value is {length} characters" in reason
    assert "at most 1024" in reason


def test_value_length_counts_characters_not_bytes() -> None:
    assert isinstance(success({"v": "€" * 1024}), Success)


def test_long_integers_fail_by_their_digits() -> None:
    assert isinstance(success({"n": 10**1023}), Success)  # 1024 digits
    assert "1025 characters" in failure_reason(success({"n": 10**1024}))


def test_integer_beyond_python_digit_limit_is_a_failure_not_a_crash() -> None:
    # str() of an int over 4300 digits raises ValueError; it must become a Failure naming the output.
    reason = failure_reason(success({"huge": 10**5000}))
    assert "'huge'" in reason
    assert "integer" in reason


def test_name_limits() -> None:
    assert isinstance(success({"n" * 256: "v"}), Success)
    assert isinstance(success({"": "v"}), Success)
    reason = failure_reason(success({"n" * 257: "v"}))
    assert "name is 257 characters" in reason
    assert len(reason) <= MAX_FAILURE_REASON


def test_non_string_name_is_a_failure() -> None:
    mapping: dict[Any, Any] = {1: "v"}
    assert "name is int, not a string" in failure_reason(success(mapping))


def test_first_bad_output_is_named() -> None:
    reason = failure_reason(success({"ok": 1, "first": None, "second": []}))
    assert "'first'" in reason
    assert "'second'" not in reason


# --- failure() --------------------------------------------------------------------------------------------------


def test_failure_keeps_short_reasons() -> None:
    assert failure("boom") == Failure("boom")
    exact = "r" * MAX_FAILURE_REASON
    assert failure(exact).reason == exact


def test_failure_strips_and_defaults() -> None:
    assert failure("  boom \n").reason == "boom"
    assert failure("").reason == failure("   ").reason
    assert failure("").reason


@pytest.mark.parametrize("length", [257, 300, 10_000])
def test_failure_truncates_to_exactly_the_limit(length: int) -> None:
    reason = failure("a" * length).reason
    assert len(reason) == MAX_FAILURE_REASON
    assert reason.endswith(TRUNCATION_MARKER)
    assert reason == "a" * (MAX_FAILURE_REASON - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER


@given(st.text())
def test_failure_always_fits(reason: str) -> None:
    result = failure(reason).reason
    assert 1 <= len(result) <= MAX_FAILURE_REASON
    if len(reason.strip()) <= MAX_FAILURE_REASON:
        assert result in (reason.strip(), failure("").reason)


def test_every_conversion_failure_fits_the_limit() -> None:
    long_name = "n" * 10_000
    for outputs in ({long_name: "v"}, {long_name[:200]: None}, {f"o{i}": i for i in range(1000)}):
        assert len(failure_reason(success(outputs))) <= MAX_FAILURE_REASON


# --- ClientRequestToken -----------------------------------------------------------------------------------------


def test_client_request_token_shape_and_determinism() -> None:
    outcome = success({"a": 1})
    first = client_request_token(TOKEN, outcome)
    assert HEX64.fullmatch(first)
    assert 32 <= len(first) <= 128
    # a redelivered message that reaches the same outcome repeats the same request token
    assert client_request_token(TOKEN, success({"a": "1"})) == first
    assert client_request_token(TOKEN, failure("x")) == client_request_token(TOKEN, Failure("x"))


def test_client_request_token_differs() -> None:
    tokens = {
        client_request_token(TOKEN, Success()),
        client_request_token(OTHER_TOKEN, Success()),
        client_request_token(TOKEN, Success((("a", "1"),))),
        client_request_token(TOKEN, Success((("a", "2"),))),
        client_request_token(TOKEN, Success((("a", "1"), ("b", "2")))),
        client_request_token(TOKEN, Success((("b", "2"), ("a", "1")))),
        client_request_token(TOKEN, Failure("x")),
        client_request_token(OTHER_TOKEN, Failure("x")),
        client_request_token(TOKEN, Failure("y")),
        client_request_token(TOKEN, Failure("")),
    }
    assert len(tokens) == 10


@given(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=4), st.text(max_size=20))
def test_success_and_failure_tokens_never_collide(outputs: list[tuple[str, str]], reason: str) -> None:
    assert client_request_token(TOKEN, Success(tuple(outputs))) != client_request_token(TOKEN, Failure(reason))


# --- request shapes ---------------------------------------------------------------------------------------------


def test_success_request_shape() -> None:
    outcome = success({"model": "s3://b/k", "ok": True})
    request = outcome.request(TOKEN)
    assert request == {
        "CallbackToken": TOKEN,
        "OutputParameters": [{"Name": "model", "Value": "s3://b/k"}, {"Name": "ok", "Value": "true"}],
        "ClientRequestToken": client_request_token(TOKEN, outcome),
    }
    validate_parameters(request, input_shape("SendPipelineExecutionStepSuccess"))


def test_empty_success_request_shape() -> None:
    request = Success().request(TOKEN)
    assert request["OutputParameters"] == []
    validate_parameters(request, input_shape("SendPipelineExecutionStepSuccess"))


def test_failure_request_shape() -> None:
    outcome = failure("x" * 1000)
    request = outcome.request(TOKEN)
    assert request == {
        "CallbackToken": TOKEN,
        "FailureReason": outcome.reason,
        "ClientRequestToken": client_request_token(TOKEN, outcome),
    }
    validate_parameters(request, input_shape("SendPipelineExecutionStepFailure"))


def test_request_keys_are_the_operations_members() -> None:
    success_members = set(input_shape("SendPipelineExecutionStepSuccess").members)
    failure_members = set(input_shape("SendPipelineExecutionStepFailure").members)
    assert set(Success().request(TOKEN)) <= success_members
    assert set(Failure("r").request(TOKEN)) <= failure_members
