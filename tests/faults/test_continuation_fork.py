"""Defect 2 — continuation fork: whatever single call fails, one step keeps one chain of continuations.

Before: a re-queue sent the next link, then deleted the old one; when that delete failed (per-entry errors were
never retried) the old message came back after its visibility timeout and ran again from the old state — two job
chains for one step. The same happened when a shutdown cancelled a send whose reply was slow, and when a
``SendMessage`` whose reply was lost was retried and stored twice.

Each scenario runs a handler that re-queues itself three times (states 1, 2, 3) and then succeeds; one chain means
it sees exactly the states ``None, 1, 2, 3`` once each.
"""

from __future__ import annotations

from typing import Any

from tests.faultproxy import FaultProxy, Rule
from tests.faults.support import Chain, start_one, until
from tests.integration.conftest import QueueFactory
from tests.worker_harness import queue_depth, running_worker, wait_for_status, worker_settings

ONE_CHAIN = [None, 1, 2, 3]


async def run_one_step(sagemaker: Any, sqs: Any, queue_url: str, chain: Chain, *, deliveries: int) -> None:
    """Run a worker until the step succeeded and ``deliveries`` messages were handled; then one chain, empty queue."""
    settings = worker_settings(queue_url, handler="chain", visibility_timeout=3)
    async with running_worker(settings, {"chain": chain}) as worker:
        arn = await start_one(sagemaker, queue_url)
        assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
        await until(lambda: worker.tally["received"] >= deliveries)
        await until(lambda: not worker.tasks, within=10)
    assert chain.calls == ONE_CHAIN
    assert await queue_depth(sqs, queue_url) == 0


async def test_a_delete_failing_once_after_a_requeue_is_retried(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    chain = Chain(delay=2.0)
    sqs_faults.add(Rule("DeleteMessageBatch", "entry_error"))  # InternalError, SQS's fault: worth a retry
    queue_url, _ = await make_queue()
    await run_one_step(sagemaker, sqs, queue_url, chain, deliveries=4)
    assert next(call.fault for call in sqs_faults.calls if call.operation == "DeleteMessageBatch") == "entry_error"


async def test_an_old_link_that_reappears_after_its_delete_was_refused_is_dropped(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    chain = Chain(delay=2.5)
    refused: list[str] = []

    def first_delete(body: dict[str, Any]) -> bool:
        handle = str(body["Entries"][0]["ReceiptHandle"])
        refused.append(refused[0] if refused else handle)
        return handle == refused[0]

    # SQS refuses the delete of link 0 as the sender's fault (no retry helps): link 0 comes back after 3 s,
    # while link 1 or 2 is the live one.
    sqs_faults.add(
        Rule("DeleteMessageBatch", "entry_error", code="ReceiptHandleIsInvalid", sender_fault=True, when=first_delete)
    )
    queue_url, _ = await make_queue()
    await run_one_step(sagemaker, sqs, queue_url, chain, deliveries=5)  # the four links and link 0 again


async def test_a_send_whose_reply_was_lost_and_was_stored_twice_runs_once(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    chain = Chain(delay=1.0)
    sqs_faults.add(Rule("SendMessage", "lost_reply"))  # stored, but the worker hears a 500 and sends it again
    queue_url, _ = await make_queue()
    await run_one_step(sagemaker, sqs, queue_url, chain, deliveries=5)  # the four links and the duplicate
    assert sum(call.operation == "SendMessage" for call in sqs_faults.calls) == 4  # three links, one twice


async def test_a_shutdown_during_a_slow_requeue_leaves_one_chain(
    sagemaker: Any, sqs: Any, make_queue: QueueFactory, sqs_faults: FaultProxy
) -> None:
    chain = Chain(delay=0.0)
    sqs_faults.add(Rule("SendMessage", "slow", delay=2.0))  # the send of link 1 is out when the stop comes
    queue_url, _ = await make_queue()
    settings = worker_settings(queue_url, handler="chain", visibility_timeout=30, shutdown_grace=0.2)
    async with running_worker(settings, {"chain": chain}):
        arn = await start_one(sagemaker, queue_url)
        await until(chain.called.is_set)
        await until(lambda: sqs_faults.rules == [] or sqs_faults.rules[0].fired == 1)
    # A new replica (no memory of the old one) carries on from whatever the stop left in the queue.
    async with running_worker(settings, {"chain": chain}):
        assert await wait_for_status(sagemaker, arn, within=60) == "Succeeded"
    assert chain.calls == ONE_CHAIN
    assert await queue_depth(sqs, queue_url) == 0
