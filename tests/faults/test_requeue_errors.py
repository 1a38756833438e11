"""Defect 3 — a continuation that cannot be re-queued answers the step with a Failure naming the cause.

Before: a ``Retry`` state that is not JSON, a body over the queue's own ``MaximumMessageSize`` (only a hard-coded
262,144 was checked), a KMS ``AccessDenied`` or sends failing on and on reached the per-message fence, which kept the
message: the handler ran again every visibility timeout until the redrive policy took the message away, and the
pipeline waited for ever.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import start_one
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, step_of, wait_for_status, worker_settings
from worker.handler import CallbackContext, JSONValue, Retry


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


@pytest.mark.parametrize(
    ("code", "times"),
    [("KMS.AccessDeniedException", 1), ("InternalError", 10_000)],
    ids=["kms-access-denied", "sends-failing-on"],
)
async def test_a_send_sqs_will_not_take_fails_the_step_naming_the_error(  # noqa: PLR0917 - fixtures
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy, code: str, times: int
) -> None:
    sqs_faults.add(Rule("SendMessage", "error", code=code, times=times))
    queue_url, _ = await make_queue()
    reason = await failure_reason(sagemaker, sqs, queue_url, Once({"job": "j-1"}))
    assert "could not be re-queued" in reason
    assert code in reason
