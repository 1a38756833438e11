"""Defect 4 — a second delivery of a token that joins the running one shares its disposition.

Before: the copy waiting for its twin returned DELETE whatever the twin decided; when the twin kept its message
(then: SageMaker refused the outcome; since the error table, a refused answer is retried, so here: SageMaker's
look-up stays inconclusive past the grace), the copy's message was deleted anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callback_worker.worker.confirm import VERIFY_GRACE, Confirmer
from callback_worker.worker.handler import CallbackContext
from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import captured_body, until
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, worker_settings


async def test_a_copy_following_a_twin_that_keeps_its_message_keeps_its_own(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sagemaker_faults: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    async def slow(context: CallbackContext) -> dict[str, str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1.0)
        return {}

    capture_url, _ = await make_queue()
    queue_url, _ = await make_queue()
    body = await captured_body(sagemaker, sqs, capture_url)
    sagemaker_faults.add(Rule("ListPipelineExecutionSteps", "error", code="AccessDeniedException", times=10_000))
    monkeypatch.setattr(Confirmer, "age", lambda self, delivery: VERIFY_GRACE)  # as if sent long ago
    for _ in range(2):  # SQS delivered the step's message twice
        await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    settings = worker_settings(queue_url, handler="slow", visibility_timeout=30)
    async with running_worker(settings, {"slow": slow}) as worker:
        await until(lambda: worker.tally["received"] == 2 and not worker.tasks)
        kept = await queue_depth(sqs, queue_url)
    assert calls == 0  # SageMaker never confirmed the token
    assert worker.tally["joined"] == 1
    assert kept == 2  # both copies wait to be delivered again (for the redrive policy); neither was deleted
