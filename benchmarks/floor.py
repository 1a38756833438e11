"""The floor: the least a callback consumer can do with aiobotocore, and nothing more.

Receive 10 per call, one SendPipelineExecutionStepSuccess per message (concurrently), one DeleteMessageBatch.
No leases, no retries, no validation, no logging. ``FLOOR_LOOPS`` receive loops run at once.
Runs until killed. Environment: ``BENCH_QUEUE_URL``, ``FLOOR_LOOPS`` and the standard AWS variables.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiobotocore.session import get_session


async def consume(sqs: Any, sagemaker: Any, queue_url: str) -> None:
    while True:
        response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20)
        messages = response.get("Messages", [])
        if not messages:
            continue
        await asyncio.gather(
            *(
                sagemaker.send_pipeline_execution_step_success(
                    CallbackToken=json.loads(message["Body"])["token"], OutputParameters=[]
                )
                for message in messages
            )
        )
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


async def main() -> None:
    queue_url = os.environ["BENCH_QUEUE_URL"]
    loops = int(os.environ.get("FLOOR_LOOPS", "1"))
    session = get_session()
    async with session.create_client("sqs") as sqs, session.create_client("sagemaker") as sagemaker:
        await asyncio.gather(*(consume(sqs, sagemaker, queue_url) for _ in range(loops)))


if __name__ == "__main__":
    asyncio.run(main())
