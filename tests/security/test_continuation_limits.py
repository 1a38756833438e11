"""Forged continuations (finding 2, the worker's part): a far-future ``notBefore`` is a Failure, not a 15-minute hop
for ever; and a forged continuation for a token SageMaker does not know never reaches a handler.

Before: any sender could put ``callbackWorkerContinuation.notBefore`` a century ahead and the worker re-queued the
message every 15 minutes for ever (the step never answered); a forged token ran the handler.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from callback_worker.worker.confirm import VERIFY_GRACE, Confirmer
from callback_worker.worker.handler import CallbackContext, Retry
from callback_worker.worker.message import CONTINUATION_KEY
from tests.faults.support import start_one, until
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, step_of, wait_for_status, worker_settings


async def captured_body(sagemaker: Any, sqs: Any, make_queue: QueueFactory) -> tuple[str, dict[str, Any]]:
    """A real step's Executing message, taken off a queue no worker serves: (execution ARN, body)."""
    capture_url, _ = await make_queue()
    arn = await start_one(sagemaker, capture_url)
    message = (await sqs.receive_message(QueueUrl=capture_url, WaitTimeSeconds=10))["Messages"][0]
    return arn, json.loads(message["Body"])


async def test_a_forged_notbefore_years_ahead_holds_nothing(sagemaker: Any, sqs: Any, make_queue: QueueFactory) -> None:
    """A continuation the worker did not seal is set aside: the step runs at once as a fresh delivery of its token
    (a sealed one cannot say years: the worker bounds the delays it writes, as the next test shows)."""
    calls: list[CallbackContext] = []

    def handler(context: CallbackContext) -> dict[str, str]:
        calls.append(context)
        return {}

    arn, body = await captured_body(sagemaker, sqs, make_queue)
    body[CONTINUATION_KEY] = {"attempt": 1, "link": 1, "state": None, "notBefore": time.time() + 100 * 365 * 86_400}
    queue_url, _ = await make_queue()
    await sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    async with running_worker(worker_settings(queue_url, handler="h"), {"h": handler}):
        assert await wait_for_status(sagemaker, arn, within=30) == "Succeeded"
    assert [context.state for context in calls] == [None]
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_handler_asking_to_wait_for_years_fails_the_step(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory
) -> None:
    def handler(context: CallbackContext) -> Retry:
        return Retry(50 * 365 * 86_400)

    queue_url, _ = await make_queue()
    async with running_worker(worker_settings(queue_url, handler="h"), {"h": handler}):
        arn = await start_one(sagemaker, queue_url)
        assert await wait_for_status(sagemaker, arn, within=30) == "Failed"
    assert "at most 7 days allowed" in (await step_of(sagemaker, arn))["FailureReason"]


async def test_a_forged_token_never_reaches_a_handler(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[CallbackContext] = []

    def handler(context: CallbackContext) -> dict[str, str]:
        calls.append(context)
        return {}

    arn, body = await captured_body(sagemaker, sqs, make_queue)
    forged = {**body, "token": "Forged0001", CONTINUATION_KEY: {"attempt": 1, "link": 3, "state": {"job": "theirs"}}}
    queue_url, _ = await make_queue()
    # A token its execution does not list is looked at again until the grace (SageMaker's listing may lag), then
    # left to the queue's redrive policy: here, as if the grace were over, it is kept at once — never run, never
    # deleted silently.
    monkeypatch.setattr(Confirmer, "age", lambda self, delivery: VERIFY_GRACE)
    await sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(forged))
    settings = worker_settings(queue_url, handler="h", visibility_timeout=3)
    async with running_worker(settings, {"h": handler}) as worker:
        await until(lambda: worker.tally["received"] >= 1 and not worker.tasks, within=30)
    assert calls == []
    assert await queue_depth(sqs, queue_url) == 1
    assert (await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn))["PipelineExecutionStatus"] == (
        "Executing"
    )
