"""callback_worker/ops/inputs.py: operator input checked by the worker's rules; no refusal ever shows a token."""

from __future__ import annotations

import pytest

from callback_worker.ops.errors import ExitCode, UsageError
from callback_worker.ops.inputs import (
    check_execution_arn,
    check_token,
    failure_outcome,
    json_or_text,
    new_token,
    parse_arguments,
    parse_pairs,
    success_outcome,
)
from callback_worker.worker.message import TOKEN_PATTERN
from callback_worker.worker.outcome import Failure, Success, client_request_token

TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-2:012345678901:pipeline/callback-pipeline/execution/7pinimwddh3a"


def test_usage_errors_exit_2() -> None:
    assert UsageError("x").exit_code is ExitCode.USAGE


def test_a_good_token_passes() -> None:
    assert check_token(TOKEN) == TOKEN


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("26vcYbeWs", "it has 9 characters"),
        ("26vcYbeWsZZ", "it has 11 characters"),
        ("26vcYbeW!Z", "it holds characters other than letters and digits"),
        ("26vcYbeWé", "it has 9 characters and it holds characters other than letters and digits"),
        ("", "it has 0 characters"),
    ],
)
def test_a_bad_token_is_refused_without_being_shown(token: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_token(token)
    assert str(caught.value) == f"a callback token is 10 letters and digits; {problem}"
    assert not token or token not in str(caught.value)


def test_execution_arns() -> None:
    assert check_execution_arn(ARN) == ARN
    with pytest.raises(UsageError, match=r"^'arn:aws:sagemaker:us-east-2:012345678901:pipeline/p' is not a pipeline"):
        check_execution_arn("arn:aws:sagemaker:us-east-2:012345678901:pipeline/p")


def test_pairs_split_at_the_first_equals_sign_and_keep_order() -> None:
    assert parse_pairs(["b=1", "a=x=y", "c="], "--output") == [("b", "1"), ("a", "x=y"), ("c", "")]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["novalue"], "--output 'novalue' is not NAME=VALUE"),
        (["=value"], "--output '=value' has no name before '='"),
        (["a=1", "a=2"], "--output 'a' is given more than once"),
        (["x" * 100], "--output '" + "x" * 60 + "...' is not NAME=VALUE"),
    ],
)
def test_bad_pairs(items: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_pairs(items, "--output")
    assert str(caught.value) == message


def test_outputs_make_the_workers_success_and_request() -> None:
    outcome = success_outcome([("count", "3"), ("ok", "true")])
    assert outcome == Success((("count", "3"), ("ok", "true")))
    assert outcome.request(TOKEN) == {
        "CallbackToken": TOKEN,
        "OutputParameters": [{"Name": "count", "Value": "3"}, {"Name": "ok", "Value": "true"}],
        "ClientRequestToken": client_request_token(TOKEN, outcome),
    }


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([(f"o{index}", "v") for index in range(51)], "51 outputs given; SageMaker accepts at most 50"),
        ([("n" * 257, "v")], "name is 257 characters; SageMaker accepts at most 256"),
        ([("big", "v" * 1025)], "invalid output 'big': value is 1025 characters; SageMaker accepts at most 1024"),
    ],
)
def test_outputs_beyond_the_service_limits_are_refused(outputs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        success_outcome(outputs)


def test_limits_are_inclusive() -> None:
    outcome = success_outcome([("n" * 256, "v" * 1024), *((f"o{index}", "") for index in range(49))])
    assert len(outcome.outputs) == 50


def test_reason_makes_the_workers_failure() -> None:
    assert failure_outcome("  disk full \n") == Failure("disk full")
    assert failure_outcome("r" * 256) == Failure("r" * 256)


@pytest.mark.parametrize(
    ("reason", "message"),
    [(" \n", "--reason is empty"), ("r" * 257, "--reason is 257 characters; SageMaker accepts at most 256")],
)
def test_an_empty_or_long_reason_is_refused_not_cut(reason: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        failure_outcome(reason)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"5"', "5"),
        ('[1, "a"]', [1, "a"]),
        ('{"k": {"n": 1}}', {"k": {"n": 1}}),
        ("hello", "hello"),
        ("", ""),
        ("s3://bucket/key", "s3://bucket/key"),
        ("NaN", "NaN"),
        ("-Infinity", "-Infinity"),
        ("[" * 100_000, "[" * 100_000),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_argument_values_are_json_when_they_parse(text: str, value: object) -> None:
    assert json_or_text(text) == value
    assert type(json_or_text(text)) is type(value)


def test_parse_arguments() -> None:
    assert parse_arguments([("number", "5"), ("name", "x")]) == {"number": 5, "name": "x"}


def test_new_tokens_match_the_pattern_and_differ() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(TOKEN_PATTERN.fullmatch(token) for token in tokens)
