"""Token verification refused by IAM: the worker names the missing permission.

Verification is on by default and needs ``sagemaker:ListPipelineExecutionSteps``. When SageMaker denies the listing,
no handler runs, the message is kept for the redrive policy, and the log line names the permission to grant (it never
suggests turning verification off). Any other inconclusive answer is reported as what it is, without the permission
advice.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from callback_worker.worker.confirm import VERIFY_GRACE, Confirmer
from callback_worker.worker.handler import CallbackContext
from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import captured_body, until
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, worker_settings

DENIED = (
    "cannot verify the token: SageMaker denied ListPipelineExecutionSteps (AccessDeniedException); grant the worker's "
    "role sagemaker:ListPipelineExecutionSteps on arn:aws:sagemaker:REGION:ACCOUNT:pipeline/*/execution/* (token "
    "verification, on by default, needs it)"
)


@pytest.mark.parametrize(
    ("code", "problem"),
    [("AccessDeniedException", DENIED), ("ValidationException", "cannot verify the token: SageMaker answered "
                                                                 "ValidationException")],
)  # fmt: skip
async def test_a_refused_listing_names_the_permission_and_runs_nothing(
    *,
    code: str,
    problem: str,
    sagemaker: Any,
    sqs: Any,
    make_queue: QueueFactory,
    sagemaker_faults: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[CallbackContext] = []

    async def record(context: CallbackContext) -> dict[str, str]:
        calls.append(context)
        return {}

    capture_url, _ = await make_queue()
    queue_url, _ = await make_queue()
    body = await captured_body(sagemaker, sqs, capture_url)
    sagemaker_faults.add(Rule("ListPipelineExecutionSteps", "error", code=code, times=10_000))
    monkeypatch.setattr(Confirmer, "age", lambda self, delivery: VERIFY_GRACE)  # past the grace at once
    await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    settings = worker_settings(queue_url, handler="record", visibility_timeout=30)
    with structlog.testing.capture_logs() as logs:
        async with running_worker(settings, {"record": record}) as worker:
            await until(lambda: worker.tally["received"] == 1 and not worker.tasks)
            kept = await queue_depth(sqs, queue_url)
    assert (calls, kept) == ([], 1)
    errors = [entry["event"] for entry in logs if entry["log_level"] == "error"]
    assert errors == [f"{problem}; past the grace, the message is left to the queue's redrive policy"]
    assert "VERIFY_TOKENS" not in repr(logs)
