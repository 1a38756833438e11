"""What a re-queued link carries when the message it continues nearly filled the queue's MaximumMessageSize.

A link handing on a decided answer needs no arguments (its delivery reports the answer; no handler runs), so under
a shared key it leaves them behind rather than fail to fit and have the handler run again. Under a key of this
process alone, another process takes the link for a fresh delivery of its token, which needs them: the link keeps
them, and one that does not fit is not sent (the delivery keeps its message, the documented window).
"""

from __future__ import annotations

import json

import pytest

from callback_worker.worker.memory import MemoryQueue
from callback_worker.worker.message import Continuation, parse_message
from callback_worker.worker.outcome import Failure
from callback_worker.worker.requeue import Requeuer
from callback_worker.worker.signing import Keyring, process_keyring
from tests.fakes import TEST_SIGNING_KEY

TOKEN = "Abcdefghij"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1"
LIMIT = 4096
SHARED = Keyring([TEST_SIGNING_KEY])


def near_full(room: int) -> str:
    """A SageMaker message whose arguments leave ``room`` bytes of the queue's limit."""
    arguments = {"handler": "h", "pad": ""}
    document = {"token": TOKEN, "pipelineExecutionArn": ARN, "arguments": arguments}
    arguments["pad"] = "p" * (LIMIT - room - len(json.dumps(document, separators=(",", ":"))))
    return json.dumps(document, separators=(",", ":"))


async def send(keyring: Keyring, continuation: Continuation, room: int = 100) -> tuple[str | None, list[str]]:
    queue = MemoryQueue(lambda: 0.0)
    queue.max_message_bytes = LIMIT
    requeuer = Requeuer(queue, lambda: 0.0, keyring)
    problem = await requeuer.send(parse_message(near_full(room)), continuation)
    return problem, [message.body for message in queue.messages.values()]


async def test_under_a_shared_key_an_answer_link_leaves_the_arguments_behind_when_they_would_not_fit() -> None:
    problem, [body] = await send(SHARED, Continuation(link=1, answer=Failure("reason c")))
    assert problem is None
    link = parse_message(body, SHARED)
    assert (link.token, link.arguments, link.continuation.answer) == (TOKEN, {}, Failure("reason c"))


@pytest.mark.parametrize("keyring", [SHARED, process_keyring()], ids=["shared key", "process key"])
async def test_an_answer_link_that_fits_keeps_the_arguments(keyring: Keyring) -> None:
    problem, [body] = await send(keyring, Continuation(link=1, answer=Failure("reason c")), room=1_000)
    assert problem is None
    assert parse_message(body, keyring).arguments["handler"] == "h"


async def test_under_a_process_key_an_answer_link_that_does_not_fit_is_not_sent() -> None:
    """Another process would run it as a fresh delivery, and a fresh delivery without arguments cannot be routed."""
    problem, sent = await send(process_keyring(), Continuation(link=1, answer=Failure("reason c")))
    assert sent == []
    assert problem is not None
    assert problem.startswith("the decided answer makes a ")


async def test_a_retry_link_keeps_its_arguments_and_one_that_does_not_fit_is_not_sent() -> None:
    problem, sent = await send(SHARED, Continuation(link=1, state={"job": "j-1"}))
    assert sent == []
    assert problem is not None
    assert problem.startswith("the handler's Retry state makes a ")
