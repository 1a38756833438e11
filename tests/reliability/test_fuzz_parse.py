"""Scenario 3, the parse path: hypothesis-generated bodies through ``worker.message.parse_message``.

Bodies: random text and JSON of every type, objects shaped like callback messages with wrong types, bad, short and
long tokens, duplicate keys in every spelling, huge and deeply nested arguments, unicode, lone surrogates (as JSON
escapes, and as bytes that are not UTF-8 decoded with ``surrogateescape``). Properties: the parser returns a checked
message or raises ``MalformedMessage`` — nothing else, ever; a valid token is never lost (a message that keeps one is
answerable); and the copy the worker re-queues for a Retry or a crash retry parses back to the same message.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.message import EXECUTION_ARN_PATTERN, TOKEN_PATTERN, CallbackMessage, Status, parse_message
from tests.reliability.conftest import count
from tests.reliability.scale import current_scale, current_seed
from tests.reliability.strategies import (
    ARN,
    Mutation,
    garbage_bodies,
    gentle_mutations,
    json_values,
    mutations,
    render_pairs,
    sendable_text,
    sqs_safe,
    valid_tokens,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(current_scale().timeout)]

FUZZ = settings(
    max_examples=current_scale().fuzz_parse_examples,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
REAL_ARN = ARN.format(pipeline="fuzz-pipeline", execution="abcdef123456")
LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

deep_bodies = st.integers(1, 100_000).flatmap(
    lambda depth: st.sampled_from(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth])
)
not_utf8_bodies = st.binary(max_size=400).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
wrapped_bodies = st.tuples(valid_tokens, deep_bodies).map(
    lambda pair: '{"token":"' + pair[0] + '","pipelineExecutionArn":"' + REAL_ARN + '","arguments":' + pair[1] + "}"
)
any_body = st.one_of(garbage_bodies(), deep_bodies, not_utf8_bodies, wrapped_bodies)


def real_message(token: str, arguments: Any) -> dict[str, Any]:
    return {"token": token, "pipelineExecutionArn": REAL_ARN, "arguments": arguments, "status": "Executing"}


def check_parsed(message: CallbackMessage) -> None:
    assert TOKEN_PATTERN.fullmatch(message.token)
    assert EXECUTION_ARN_PATTERN.fullmatch(message.pipeline_execution_arn)
    assert isinstance(message.arguments, dict)
    assert message.status in (Status.EXECUTING, Status.STOPPING)
    assert message.continuation.attempt >= 1
    assert math.isfinite(message.continuation.not_before)


def parse_or_malformed(body: str, scenario: str) -> CallbackMessage | MalformedMessage:
    """The parsed message, or the MalformedMessage raised; any other exception fails the test. Counts the case."""
    try:
        message = parse_message(body)
    except MalformedMessage as exc:
        malformed = exc
    else:
        check_parsed(message)
        count(scenario, "parsed")
        return message
    assert malformed.token is None or TOKEN_PATTERN.fullmatch(malformed.token), "a MalformedMessage with a bad token"
    assert isinstance(malformed.reason, str)
    count(scenario, "malformed_with_token" if malformed.token else "malformed_without_token")
    return malformed


@FUZZ
@seed(current_seed())
@given(any_body)
def test_any_body_parses_or_is_malformed(body: str) -> None:
    parse_or_malformed(body, "test_any_body_parses_or_is_malformed")


@FUZZ
@seed(current_seed())
@given(valid_tokens, json_values(), mutations)
def test_a_valid_token_is_never_lost(token: str, arguments: Any, mutation: Mutation) -> None:
    body = mutation.apply(real_message(token, arguments))
    result = parse_or_malformed(body, "test_a_valid_token_is_never_lost")
    assert result.token == token, f"the token was lost: {result!r}"
    assert sqs_safe(body) == body, "the mutation must give a body SQS can carry"


def canonical(message: CallbackMessage) -> str:
    return json.dumps(
        [
            message.token,
            message.pipeline_execution_arn,
            message.arguments,
            message.status.value,
            message.continuation.to_json(),
        ],
        sort_keys=True,
    )


def has_unsendable_text(body: str) -> bool:
    """Arguments holding text SQS refuses in a body once unescaped (covered by the explicit test below)."""
    return bool(LONE_SURROGATE_ESCAPE.search(body)) or "\\ufffe" in body.lower() or "\\uffff" in body.lower()


@FUZZ
@seed(current_seed())
@given(valid_tokens, json_values(text=sendable_text), gentle_mutations)
def test_a_requeued_copy_parses_back_to_the_same_message(token: str, arguments: Any, mutation: Mutation) -> None:
    body = mutation.apply(real_message(token, arguments))
    assume(not has_unsendable_text(body) and sqs_safe(body) == body)
    result = parse_or_malformed(body, "test_a_requeued_copy_parses_back_to_the_same_message")
    assume(isinstance(result, CallbackMessage))
    assert isinstance(result, CallbackMessage)
    requeued = result.to_body(result.continuation)
    assert sqs_safe(requeued) == requeued
    assert canonical(parse_message(requeued)) == canonical(result)


@pytest.mark.parametrize("code", [0xD800, 0xDFFF, 0xFFFE, 0xFFFF], ids=["D800", "DFFF", "FFFE", "FFFF"])
def test_a_requeued_copy_of_escaped_unsendable_text_can_be_sent(code: int) -> None:
    """Regression (fixed in bb9409f): ``to_body`` wrote escaped lone surrogates and U+FFFE/U+FFFF raw."""
    body = render_pairs(list(real_message("Abcdefghij", {"x": chr(code)}).items()))
    assert sqs_safe(body) == body, "the original body is plain ASCII: SQS carries it"
    message = parse_message(body)
    requeued = message.to_body(message.continuation)
    requeued.encode("utf-8")
    assert sqs_safe(requeued) == requeued


@FUZZ
@seed(current_seed())
@given(st.lists(st.tuples(st.sampled_from(["token", "Token", "TOKEN"]), valid_tokens), min_size=2, max_size=4))
def test_duplicate_token_keys_resolve_to_one_of_the_given_tokens(pairs: list[tuple[str, str]]) -> None:
    body = render_pairs([("pipelineExecutionArn", REAL_ARN), *pairs])
    result = parse_or_malformed(body, "test_duplicate_token_keys_resolve_to_one_of_the_given_tokens")
    assert result.token in {token for _, token in pairs}
