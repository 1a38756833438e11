"""worker/message.py: parsing SQS bodies into CallbackMessage, or MalformedMessage saying why not."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.handler import JSONValue
from callback_worker.worker.message import (
    CONTINUATION_KEY,
    SEAL_KEY,
    CallbackMessage,
    Continuation,
    Status,
    sealed_payload,
)
from callback_worker.worker.message import parse_message as parse
from callback_worker.worker.signing import Keyring

#: This file tests what a genuine continuation may hold: every continuation field is sealed as the worker seals its
#: own (tests/security/test_continuation_seals.py tests the seals themselves).
KEYRING = Keyring([b"k" * 32])


def sealed(text: str) -> str:
    """``text`` with its continuation field (when it is an object) sealed under ``KEYRING``, left as written."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if not isinstance(document, dict):
        return text
    key = next((name for name in document if name.lower() == CONTINUATION_KEY.lower()), None)
    if key is None or not isinstance(document[key], dict) or SEAL_KEY in document[key]:
        return text
    seal = KEYRING.sign(sealed_payload({name.lower(): value for name, value in document.items()}))
    opening = re.search(rf'"{re.escape(key)}"\s*:\s*\{{\s*', text)
    assert opening is not None
    separator = "" if text[opening.end()] == "}" else ","
    return f'{text[: opening.end()]}"{SEAL_KEY}":"{seal}"{separator}{text[opening.end() :]}'


def parse_message(text: str) -> CallbackMessage:
    """Parse as a worker with ``KEYRING`` does, the continuation sealed as that worker would have sealed it."""
    return parse(sealed(text), KEYRING)


TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-2:012345678901:pipeline/callback-pipeline/execution/7pinimwddh3a"
ARGUMENTS: dict[str, JSONValue] = {"number": 5, "stringArg": "some-arg", "inputData": "s3://bucket/abalone.csv"}


def body(**fields: Any) -> str:
    document: dict[str, Any] = {"token": TOKEN, "pipelineExecutionArn": ARN, "arguments": ARGUMENTS}
    document.update(fields)
    return json.dumps({key: value for key, value in document.items() if value is not _ABSENT})


_ABSENT: Any = object()


def same_json(left: object, right: object) -> bool:
    """Equality that also tells 1 from 1.0 from True (plain ``==`` does not)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def malformed(text: str) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(text)
    return caught.value


# --- well-formed messages ---------------------------------------------------------------------------------------


def test_the_documented_example() -> None:
    message = parse_message(body(status="Executing"))
    assert message.token == TOKEN
    assert message.pipeline_execution_arn == ARN
    assert message.pipeline_name == "callback-pipeline"
    assert message.execution_id == "7pinimwddh3a"
    assert message.status is Status.EXECUTING
    assert message.continuation == Continuation()
    assert same_json(message.arguments, ARGUMENTS)


def test_argument_json_types_are_kept() -> None:
    arguments: dict[str, JSONValue] = {
        "int": 5,
        "float": 5.0,
        "bool": True,
        "null": None,
        "string": "5",
        "list": [1, "a", None, 2.5, False],
        "object": {"nested": {"deep": [0]}},
    }
    message = parse_message(body(arguments=arguments))
    assert same_json(message.arguments, arguments)
    assert type(message.arguments["int"]) is int
    assert type(message.arguments["float"]) is float


def test_keys_are_case_insensitive() -> None:
    text = json.dumps({"Token": TOKEN, "PIPELINEEXECUTIONARN": ARN, "Arguments": {"Key": 1}, "Status": "Executing"})
    message = parse_message(text)
    assert (message.token, message.pipeline_name) == (TOKEN, "callback-pipeline")
    assert message.arguments == {"Key": 1}  # argument names themselves keep their case


@pytest.mark.parametrize("status", ["Stopping", "stopping", "STOPPING"])
def test_stopping(status: str) -> None:
    assert parse_message(body(status=status)).status is Status.STOPPING


@pytest.mark.parametrize("status", ["Executing", "executing", _ABSENT])
def test_executing_is_the_default(status: object) -> None:
    assert parse_message(body(status=status)).status is Status.EXECUTING


@pytest.mark.parametrize("arguments", [_ABSENT, None, {}])
def test_no_arguments(arguments: object) -> None:
    assert parse_message(body(arguments=arguments)).arguments == {}


@pytest.mark.parametrize(
    ("arn", "pipeline", "execution"),
    [
        ("arn:aws-cn:sagemaker:cn-north-1:012345678901:pipeline/p/execution/e1", "p", "e1"),
        ("arn:aws-us-gov:sagemaker:us-gov-west-1:012345678901:pipeline/My-Pipe/execution/abc", "My-Pipe", "abc"),
    ],
)
def test_pipeline_and_execution_from_arn(arn: str, pipeline: str, execution: str) -> None:
    message = parse_message(body(pipelineExecutionArn=arn))
    assert (message.pipeline_name, message.execution_id) == (pipeline, execution)


def test_unknown_keys_are_ignored() -> None:
    assert parse_message(body(somethingNew={"a": 1})).token == TOKEN


# --- malformed without a usable token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("token=26vcYbeWsZ", "not JSON"),
        ("[1, 2]", "JSON list, not an object"),
        ('"26vcYbeWsZ"', "JSON str, not an object"),
        ("null", "JSON NoneType"),
        ("42", "JSON int"),
        ("{}", "'token' is missing"),
        (json.dumps({"pipelineExecutionArn": ARN}), "'token' is missing"),
    ],
)
def test_unusable_bodies_have_no_token(text: str, reason_part: str) -> None:
    error = malformed(text)
    assert error.token is None
    assert reason_part in error.reason


@pytest.mark.parametrize(
    "token",
    [
        "26vcYbeWs",  # 9
        "26vcYbeWsZa",  # 11
        "abc!EFGH12",  # the service pattern is [a-zA-Z0-9]+
        "26vcYbeWs ",
        "26vcYbeWsZ\n",
        "ÄBCDEFGHIJ",  # letters beyond ASCII
        "١٢٣٤٥٦٧٨٩٠",  # Arabic-Indic digits
        "",
        1234567890,
        None,
        ["26vcYbeWsZ"],
    ],
)
def test_invalid_tokens(token: object) -> None:
    error = malformed(body(token=token))
    assert error.token is None
    assert error.pipeline_execution_arn is None
    assert "'token'" in error.reason


def test_long_bad_token_is_previewed_not_copied() -> None:
    error = malformed(body(token="x" * 5000))
    assert "5000-character string" in error.reason
    assert len(error.reason) < 300


# --- malformed with a usable token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason_part"),
    [
        ({"pipelineExecutionArn": _ABSENT}, "'pipelineExecutionArn' is missing"),
        ({"pipelineExecutionArn": 7}, "got int"),
        ({"pipelineExecutionArn": ""}, "not a pipeline execution ARN"),
        ({"pipelineExecutionArn": "arn:aws:sagemaker:us-east-2:012345678901:pipeline/p"}, "not a pipeline execution"),
        ({"pipelineExecutionArn": "arn:aws:sagemaker:us-east-2:012345678901:training-job/x"}, "not a pipeline"),
        ({"pipelineExecutionArn": "arn:aws:sqs:us-east-2:012345678901:pipeline/p/execution/e"}, "not a pipeline"),
        ({"pipelineExecutionArn": ARN + "/extra"}, "not a pipeline execution ARN"),
        ({"pipelineExecutionArn": ARN.replace("012345678901", "0123")}, "not a pipeline execution ARN"),
        ({"arguments": [1, 2]}, "'arguments' is list, not an object"),
        ({"arguments": "a=b"}, "'arguments' is str"),
        ({"arguments": 3}, "'arguments' is int"),
        ({"status": "Stopped"}, "'status' must be Executing or Stopping"),
        ({"status": None}, "'status'"),
        ({"status": 1}, "'status'"),
        ({CONTINUATION_KEY: {"attempt": 0}}, "bad attempt"),
        ({CONTINUATION_KEY: {"attempt": True}}, "bad attempt"),
        ({CONTINUATION_KEY: {"attempt": 2.0}}, "bad attempt"),
        ({CONTINUATION_KEY: {"attempt": "2"}}, "bad attempt"),
        ({CONTINUATION_KEY: {"continuations": -1}}, "bad attempt or continuation count"),
        ({CONTINUATION_KEY: {"notBefore": "soon"}}, "bad notBefore"),
        ({CONTINUATION_KEY: {"notBefore": False}}, "bad notBefore"),
        ({CONTINUATION_KEY: {"originMessageId": 5}}, "originMessageId"),
    ],
)
def test_bad_content_keeps_the_token(fields: dict[str, Any], reason_part: str) -> None:
    error = malformed(body(**fields))
    assert error.token == TOKEN
    assert reason_part in error.reason
    arn = fields.get("pipelineExecutionArn", ARN)
    assert error.pipeline_execution_arn == (arn if isinstance(arn, str) else None)


@pytest.mark.parametrize("value", [[], "x", 3, {}])
def test_a_continuation_that_is_not_the_workers_makes_a_fresh_delivery(value: object) -> None:
    message = parse(body(**{CONTINUATION_KEY: value}), KEYRING)
    assert message.continuation == Continuation()
    assert message.distrusted is not None
    assert "not the worker's" in message.distrusted


def test_parsed_without_a_keyring_no_continuation_is_taken() -> None:
    text = parse_message(body()).to_body(Continuation(attempt=3, state={"job": "j-1"}), KEYRING)
    message = parse(text)
    assert message.continuation == Continuation()
    assert message.distrusted == "its continuation cannot be authenticated without a key"


@pytest.mark.parametrize("not_before", ["1e400", "9" * 400, "NaN", "Infinity", "-Infinity"])
def test_non_finite_or_huge_not_before_is_malformed(not_before: str) -> None:
    # Python's JSON parser accepts NaN/Infinity, and a 400-digit integer overflows float(); neither may escape as
    # anything but MalformedMessage, and an infinite due time would re-queue the message forever.
    text = body().removesuffix("}") + f', "{CONTINUATION_KEY}": {{"notBefore": {not_before}}}}}'
    error = malformed(text)
    assert error.token == TOKEN
    assert "notBefore" in error.reason


def test_integer_beyond_the_digit_limit_is_malformed_keeping_the_token() -> None:
    error = malformed('{"token": "26vcYbeWsZ", "arguments": {"n": ' + "9" * 5000 + "}}")
    assert error.token == "26vcYbeWsZ"  # the body is not JSON Python will read, but it names one token
    assert error.pipeline_execution_arn is None
    assert "not JSON" in error.reason


def test_a_body_too_deep_to_parse_keeps_its_token_and_arn() -> None:
    depth = 100_000  # too deep for any Python's parser (3.11 gives up near 1,000, later ones deeper)
    text = json.dumps({"token": TOKEN, "pipelineExecutionArn": ARN}).removesuffix("}")
    error = malformed(text + ', "arguments": {"x": ' + "[" * depth + "]" * depth + "}}")
    assert (error.token, error.pipeline_execution_arn) == (TOKEN, ARN)
    assert "RecursionError" in error.reason


def test_a_broken_body_naming_two_tokens_keeps_neither() -> None:
    error = malformed('{"token": "26vcYbeWsZ", "arguments": {"token": "AAAAAAAAAA"}')
    assert error.token is None


# --- continuation envelope --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.EXECUTING, Status.STOPPING])
def test_continuation_round_trip(status: Status) -> None:
    original = parse_message(body(status=status.value, arguments={"n": 1, "x": 1.0, "u": "é€", "l": [None]}))
    continuation = Continuation(
        attempt=2, continuations=3, state={"job": ["a", 1, 2.5, True, None]}, not_before=1234.5, origin_message_id="m1"
    )
    text = original.to_body(continuation)
    again = parse_message(text)
    assert again.continuation == continuation
    assert same_json(again.continuation.state, continuation.state)
    assert same_json(again.arguments, original.arguments)
    assert (again.token, again.pipeline_execution_arn, again.status) == (TOKEN, ARN, status)
    assert text.isascii()  # escaped: whatever arrived stays sendable (a lone surrogate, U+FFFF)
    assert ", " not in text
    assert ": " not in text


@pytest.mark.parametrize("code_point", [0xD800, 0xDFFF, 0xFFFE, 0xFFFF])
def test_a_requeued_copy_of_unsendable_text_is_plain_ascii(code_point: int) -> None:
    text = chr(code_point)
    original = parse_message(body(arguments={"v": text}))
    requeued = original.to_body(Continuation(attempt=2))
    requeued.encode()  # no lone surrogate left to fail
    assert requeued.isascii()
    assert parse_message(requeued).arguments == {"v": text}


def test_to_body_of_default_continuation_parses_to_default() -> None:
    message = parse_message(body())
    assert parse_message(message.to_body(Continuation())).continuation == Continuation()


def test_integer_not_before_is_read_as_float() -> None:
    text = body(**{CONTINUATION_KEY: {"notBefore": 5}})
    assert parse_message(text).continuation.not_before == 5.0


def test_continuation_key_is_case_insensitive_like_the_rest() -> None:
    text = body(**{CONTINUATION_KEY.upper(): {"attempt": 4}})
    assert parse_message(text).continuation.attempt == 4


# --- properties -------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
tokens = st.text(alphabet="abcXYZ019", min_size=10, max_size=10)
arbitrary_tokens = tokens | json_values
arns = st.just(ARN) | json_values
continuations = (
    st.none()
    | json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "attempt": st.integers() | json_values,
            "continuations": st.integers() | json_values,
            "notBefore": st.floats() | st.integers(min_value=-(10**400), max_value=10**400) | json_values,
            "originMessageId": st.text(max_size=5) | json_values,
            "state": json_values,
        },
    )
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "token": arbitrary_tokens,
        "pipelineExecutionArn": arns,
        "arguments": json_values,
        "status": st.sampled_from(["Executing", "Stopping", "stopping"]) | json_values,
        CONTINUATION_KEY: continuations,
    },
)


def check_only_malformed(text: str) -> CallbackMessage | None:
    """Parse ``text``; the only exception allowed is MalformedMessage, whose token is set only when valid."""
    try:
        return parse_message(text)
    except MalformedMessage as error:
        token = error.token
    assert token is None or (len(token) == 10 and token.isascii() and token.isalnum())
    return None


@given(json_values)
def test_arbitrary_json_raises_only_malformed(value: JSONValue) -> None:
    check_only_malformed(json.dumps(value))


@given(st.text())
@example("\ud800")
@example("NaN")
@example('{"token": "26vcYbeWsZ", "token": 5}')
def test_arbitrary_text_raises_only_malformed(text: str) -> None:
    check_only_malformed(text)


@given(message_like)
@example({"token": TOKEN, "pipelineExecutionArn": ARN, CONTINUATION_KEY: {"notBefore": 10**400}})
def test_message_like_objects_raise_only_malformed(document: dict[str, Any]) -> None:
    token = document.get("token")
    token_is_valid = isinstance(token, str) and len(token) == 10 and token.isascii() and token.isalnum()
    try:
        parse_message(json.dumps(document))
    except MalformedMessage as error:
        reported = error.token
    else:
        reported = token if token_is_valid else "parsed although the token is invalid"
    assert reported == (token if token_is_valid else None)


@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":', '{"token":"26vcYbeWsZ","x":[']))
def test_deeply_nested_json_raises_only_malformed(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '{"token":"26vcYbeWsZ","x":[': "]}"}[opener]
    check_only_malformed(opener * depth + "0" + closer * depth)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_valid_message_round_trips_argument_types(arguments: dict[str, JSONValue]) -> None:
    message = parse_message(body(arguments=arguments))
    assert same_json(message.arguments, arguments)
    again = parse_message(message.to_body(Continuation(attempt=2, state=arguments)))
    assert same_json(again.arguments, arguments)
    assert same_json(again.continuation.state, arguments)
