"""Finding 7 (deep nesting loses a valid token): a body the JSON parser gives up on still carries its token.

Before: a body whose arguments were nested ~980+ levels deep raised ``RecursionError`` in ``json.loads``; the worker
treated it as a body without a token, so it went to the dead-letter queue and its step waited (until someone answered
it by hand) although the token in its first bytes was valid. Now the token is read from the raw text when the text
names exactly one, and the step is answered with a Failure saying the body is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.message import parse_message
from tests.faults.support import start_one
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, step_of, wait_for_status, worker_settings

TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"
#: Too deep for any Python's parser (3.11 gives up near 1,000 levels, later versions deeper); 200 KB of text.
DEPTH = 100_000


def deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def body(token_key: str = "token", token: str = TOKEN, arguments: str | None = None) -> str:  # noqa: S107
    return (
        f'{{"{token_key}": "{token}", "pipelineExecutionArn": "{ARN}", '
        f'"arguments": {{"x": {deep() if arguments is None else arguments}}}}}'
    )


def malformed(text: str) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(text)
    return caught.value


@pytest.mark.parametrize("token_key", ["token", "Token", "TOKEN"])
def test_a_deeply_nested_body_keeps_its_token(token_key: str) -> None:
    error = malformed(body(token_key))
    assert error.token == TOKEN
    assert error.pipeline_execution_arn == ARN
    assert "not JSON" in error.reason
    assert "RecursionError" in error.reason


def test_a_broken_body_keeps_its_token_too() -> None:
    error = malformed(body(arguments="{"))
    assert error.token == TOKEN


@pytest.mark.parametrize(
    "text",
    [
        body(arguments=f'{{"token": "Other12345", "y": {deep()}}}'),  # two different tokens: which is real?
        body(token="short"),
        body(token="26vcYbeWsZx"),
        body(token_key="tokens"),
        deep(),
        "token=26vcYbeWsZ",
    ],
    ids=["two-tokens", "short-token", "long-token", "other-key", "no-object", "not-json"],
)
def test_no_token_unless_the_text_names_exactly_one(text: str) -> None:
    assert malformed(text).token is None


def test_the_same_token_twice_is_one_token() -> None:
    assert malformed(body(arguments=f'{{"token": "{TOKEN}", "y": {deep()}}}')).token == TOKEN


async def test_the_worker_answers_a_deeply_nested_body_with_a_failure(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    capture_url, _ = await make_queue()
    arn = await start_one(sagemaker, capture_url)
    real = json.loads((await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=10))["Messages"][0]["Body"])
    text = json.dumps(real).removesuffix("}") + ', "arguments": {"x": ' + deep() + "}}"
    queue_url, dlq_url = await make_queue(max_receive_count=1)
    await sqs.send_message(QueueUrl=queue_url, MessageBody=text)
    async with running_worker(worker_settings(queue_url), {}):
        assert await wait_for_status(sagemaker, arn, within=30) == "Failed"
    assert "Malformed callback message: body is not JSON" in (await step_of(sagemaker, arn))["FailureReason"]
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0, "nothing went to the dead-letter queue"
