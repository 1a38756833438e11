"""Re-queueing: a continuation (``Retry``, a crash retry, a hop towards a far due time, or a decided answer handed
on) becomes the next link of its chain, a new message due ``wait`` seconds after SQS takes it.

The new link is sent before the old one is deleted (the dispatcher deletes it once this returns), so a failure in
between leaves two links, never none; the older one is recognised by its link number where it meets the newer one
(:mod:`worker.tokens`). What keeps the link from ever being sent — a state that is not JSON, a body over the queue's
own ``MaximumMessageSize``, a body SQS refuses (the error table's *invalid content*) — comes back as the reason to
answer the step with a Failure. Every other error is transient (:mod:`worker.taxonomy`): it is raised after a few
tries, and the caller tries again for as long as it holds the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from callback_worker.config.limits import MAX_DELAY_SECONDS
from callback_worker.worker.logs import get_logger
from callback_worker.worker.message import CallbackMessage, Continuation
from callback_worker.worker.queue import Queue
from callback_worker.worker.signing import Keyring
from callback_worker.worker.sqs import with_retries
from callback_worker.worker.taxonomy import ErrorClass, classify, explain

log = get_logger("worker.requeue")
_SEND = "SendMessage"


class Requeuer:
    """Sends the next link of a chain."""

    def __init__(self, queue: Queue, wall: Callable[[], float], keyring: Keyring) -> None:
        self.queue = queue
        self.wall = wall
        """Only for the informational ``notBefore`` that links of earlier versions were timed by."""
        self.keyring = keyring
        """Seals every link sent (:mod:`worker.signing`)."""
        self.sent = 0

    async def send(self, message: CallbackMessage, continuation: Continuation) -> str | None:
        """Send ``continuation`` as the next link; None once SQS took it, else why it can never be re-queued.
        Transient errors are raised once a few tries failed."""
        try:
            body = message.to_body(continuation, self.keyring)
        except (TypeError, ValueError, RecursionError) as exc:
            return f"the handler's Retry state cannot be re-queued, it is not plain JSON: {type(exc).__name__}: {exc}"
        size, limit = len(body.encode()), self.queue.max_message_bytes
        if size > limit and continuation.answer is not None and self.keyring.shared:
            # A decided answer needs no arguments (no handler runs again), but a link another process cannot
            # authenticate is a fresh delivery, which needs them: they are left out only under a shared key.
            body = message.to_body(continuation, self.keyring, arguments=False)
            size = len(body.encode())
        if size > limit:
            what = "the handler's Retry state" if continuation.answer is None else "the decided answer"
            return f"{what} makes a {size}-byte message; the queue's MaximumMessageSize is {limit}"
        wait = due_in(continuation, self.wall())
        delay = math.ceil(max(0.0, min(wait, MAX_DELAY_SECONDS)))
        try:
            await with_retries(lambda: self.queue.send(body, delay), _SEND)
        except Exception as exc:
            if classify(_SEND, exc) is not ErrorClass.INVALID_CONTENT:
                raise
            log.error("SQS refused the continuation; answering the step with a failure", error=explain(_SEND, exc))  # noqa: TRY400 - an AWS answer, not a bug
            return f"the step's continuation could not be re-queued: {explain(_SEND, exc)}"
        self.sent += 1
        log.info("re-queued", link=continuation.link, delay=delay, due_in=round(wait, 1))
        return None


def due_in(continuation: Continuation, wall_now: float) -> float:
    """Seconds until a continuation about to be sent is due: its ``wait`` (counted from the send), or for a link
    of an earlier version its ``notBefore`` against the wall clock."""
    if continuation.wait is not None:
        return continuation.wait
    return continuation.not_before - wall_now
