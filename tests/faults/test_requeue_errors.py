"""Defect 3 — a continuation that can never be re-queued answers the step with a Failure naming the cause; one that
SQS refuses for a while is tried again until it is taken.

Before: a ``Retry`` state that is not JSON, a body over the queue's own ``MaximumMessageSize`` (only a hard-coded
262,144 was checked), a KMS ``AccessDenied`` or sends failing on and on reached the per-message fence, which kept the
message: the handler ran again every visibility timeout until the redrive policy took the message away, and the
pipeline waited for ever. Then, for a while, every send error answered the step with a Failure — which a KMS grant
still propagating, or a credential refresh failing once, should not do (the error table, ``worker/taxonomy.py``):
now only a body SQS refuses for its content fails the step.
"""

from __future__ import annotations

from typing import Any

import pytest

from callback_worker.worker.handler import CallbackContext, JSONValue, Retry
from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import Chain, start_one
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, step_of, wait_for_status, worker_settings


class Once:
    """Asks to be called again with ``state``; counts its calls."""

    def __init__(self, state: JSONValue) -> None:
        self.state = state
        self.calls = 0

    async def __call__(self, context: CallbackContext) -> Retry:
        self.calls += 1
        return Retry(0, state=self.state)


async def failure_reason(sagemaker: Any, sqs: Any, queue_url: str, handler: Once) -> str:
    async with running_worker(worker_settings(queue_url, handler="h", visibility_timeout=3), {"h": handler}):
        arn = await start_one(sagemaker, queue_url)
        assert await wait_for_status(sagemaker, arn, within=60) == "Failed"
    assert handler.calls == 1
    assert await queue_depth(sqs, queue_url) == 0
    return str((await step_of(sagemaker, arn))["FailureReason"])


async def test_a_state_that_is_not_json_fails_the_step(sagemaker: Any, sqs: Any, make_queue: QueueFactory) -> None:
    queue_url, _ = await make_queue()
    reason = await failure_reason(sagemaker, sqs, queue_url, Once({"when": object()}))  # type: ignore[dict-item]
    assert "not plain JSON" in reason
    assert "TypeError" in reason


async def test_a_body_over_the_queues_own_maximum_fails_the_step(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    queue_url, _ = await make_queue()
    await sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"MaximumMessageSize": "2048"})
    reason = await failure_reason(sagemaker, sqs, queue_url, Once("x" * 4000))
    assert "MaximumMessageSize is 2048" in reason


async def test_a_body_sqs_refuses_for_its_content_fails_the_step_naming_the_error(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    sqs_faults.add(Rule("SendMessage", "error", code="InvalidMessageContents", times=10_000))
    queue_url, _ = await make_queue()
    reason = await failure_reason(sagemaker, sqs, queue_url, Once({"job": "j-1"}))
    assert "could not be re-queued" in reason
    assert "InvalidMessageContents" in reason


@pytest.mark.parametrize(
    ("code", "times"),
    [("KMS.AccessDeniedException", 1), ("KmsAccessDenied", 3), ("InternalError", 12)],
    ids=["kms-access-denied", "kms-access-denied-for-a-while", "sends-failing-for-a-while"],
)
async def test_a_send_sqs_refuses_for_a_while_is_tried_again_and_the_chain_goes_on(  # noqa: PLR0917 - fixtures
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy, code: str, times: int
) -> None:
    sqs_faults.add(Rule("SendMessage", "error", code=code, times=times))
    queue_url, _ = await make_queue()
    handler = Chain(links=1)
    async with running_worker(worker_settings(queue_url, handler="h", visibility_timeout=3), {"h": handler}):
        arn = await start_one(sagemaker, queue_url)
        assert await wait_for_status(sagemaker, arn, within=90) == "Succeeded"
    assert handler.calls == [None, 1]
    assert await queue_depth(sqs, queue_url) == 0
