"""Delivering callback messages to SQS.

The real service puts a message on the step's queue when a callback step starts and again when its execution
is being stopped. The emulator does the same through an aiobotocore SQS client built from the standard AWS
environment, so ``AWS_ENDPOINT_URL_SQS`` / ``AWS_ENDPOINT_URL``, the region and the credentials chain decide
where it goes (moto, LocalStack, ...); no endpoint is ever derived from the queue URL.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from callback_worker.emulator.values import JSONValue

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 15.0


@dataclass(frozen=True)
class StepMessage:
    """A callback message as delivered: the queue, and the body's fields."""

    queue_url: str
    token: str
    pipeline_execution_arn: str
    arguments: JSONValue
    status: str

    def body(self) -> str:
        """The SQS message body: ``{"token", "pipelineExecutionArn", "arguments", "status"}`` as JSON."""
        return json.dumps(
            {
                "token": self.token,
                "pipelineExecutionArn": self.pipeline_execution_arn,
                "arguments": self.arguments,
                "status": self.status,
            }
        )


class MessageSender(Protocol):
    """Puts one message body on one queue; raises when the queue did not accept it."""

    async def send(self, queue_url: str, body: str) -> None:
        """Send ``body`` to ``queue_url``."""
        ...


class SqsSender:
    """A :class:`MessageSender` over an aiobotocore SQS client; use as an async context manager."""

    def __init__(self, default_region: str) -> None:
        self._default_region = default_region
        self._stack = AsyncExitStack()
        self._client: SQSClient | None = None

    async def __aenter__(self) -> SqsSender:
        session = get_session()
        region = session.get_config_variable("region") or self._default_region
        config = AioConfig(connect_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT)
        self._client = await self._stack.enter_async_context(
            session.create_client("sqs", region_name=region, config=config)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client = None
        await self._stack.aclose()

    async def send(self, queue_url: str, body: str) -> None:
        """Send ``body`` to ``queue_url``; botocore's errors propagate to the caller."""
        if self._client is None:
            raise RuntimeError("the SQS sender is not open")
        await self._client.send_message(QueueUrl=queue_url, MessageBody=body)
