"""The engine's background work: callback messages on their way to SQS, documents from S3, stub timers.

:class:`Background` owns the tasks (so they can be awaited and cancelled together) and the record of every
message a queue accepted or refused, which the server's introspection API hands to tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from callback_worker.emulator.sqs import MessageSender, StepMessage

logger = logging.getLogger("emulator")


class Background:
    """Tasks in flight and callback message delivery."""

    def __init__(self, sender: MessageSender) -> None:
        self.sender = sender
        #: Every message the queues accepted, in order.
        self.sent: list[StepMessage] = []
        #: Every message a queue refused: the message and the error text.
        self.send_failures: list[tuple[StepMessage, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task owned here."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, message: StepMessage) -> str | None:
        """Send one message; the error text if the queue did not take it, else ``None``."""
        try:
            await self.sender.send(message.queue_url, message.body())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the SQS client raised becomes the step's reason
            text = f"{type(error).__name__}: {error}"
            self.send_failures.append((message, text))
            logger.warning("sending to %s failed: %s", message.queue_url, text)
            return text
        self.sent.append(message)
        return None

    async def aclose(self) -> None:
        """Cancel the tasks still in flight and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no task is in flight (tasks started meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
