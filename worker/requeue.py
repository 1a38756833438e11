"""Re-queueing: a continuation (``Retry``, a crash retry, or a hop towards a far ``notBefore``) becomes the next
link of its chain, a new message carrying the state, due at its ``notBefore``.

The new link is sent before the old one is deleted (the dispatcher deletes it once this returns), so a failure in
between leaves two links, never none; the older one is recognised by its link number where it meets the newer one
(:mod:`worker.tokens`). Anything that keeps the link from being sent — a state that is not JSON, a body over the
queue's own ``MaximumMessageSize``, an error SQS will not recover from (a KMS key the worker may not use), or sends
still failing after their retries — comes back as the reason to answer the step with a Failure: a continuation that
cannot be stored would otherwise re-run the handler every visibility timeout until the redrive policy takes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from config.limits import MAX_DELAY_SECONDS
from worker.logs import get_logger
from worker.message import CallbackMessage, Continuation
from worker.queue import Queue
from worker.retrying import error_code
from worker.sqs import with_retries

log = get_logger("worker.requeue")


class Requeuer:
    """Sends the next link of a chain."""

    def __init__(self, queue: Queue, clock: Callable[[], float]) -> None:
        self.queue = queue
        self.clock = clock
        self.sent = 0

    async def send(self, message: CallbackMessage, continuation: Continuation) -> str | None:
        """Send ``continuation`` as the next link; None once SQS took it, else why it could not be re-queued."""
        try:
            body = message.to_body(continuation)
        except (TypeError, ValueError, RecursionError) as exc:
            return f"the handler's Retry state cannot be re-queued, it is not plain JSON: {type(exc).__name__}: {exc}"
        size, limit = len(body.encode()), self.queue.max_message_bytes
        if size > limit:
            return f"the handler's Retry state makes a {size}-byte message; the queue's MaximumMessageSize is {limit}"
        delay = math.ceil(max(0.0, min(continuation.not_before - self.clock(), MAX_DELAY_SECONDS)))
        try:
            await with_retries(lambda: self.queue.send(body, delay))
        except Exception as exc:  # noqa: BLE001 - every send failure becomes the step's reason
            log.error("re-queue failed; answering the step with a failure", error=f"{error_code(exc)}: {exc}")  # noqa: TRY400 - an AWS answer, not a bug
            return f"the step's continuation could not be re-queued: {error_code(exc)}: {exc}"
        self.sent += 1
        log.info(
            "re-queued", link=continuation.link, delay=delay, due_in=round(continuation.not_before - self.clock(), 1)
        )
        return None
