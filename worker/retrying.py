"""Jittered exponential backoff, every retry loop's policy side by side, and the plain outage check the built-in
handlers use (the delivery path's error table is :mod:`worker.taxonomy`)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from callback_worker.worker.taxonomy import THROTTLING_CODES, error_code, is_outage

__all__ = ["THROTTLING_CODES", "Backoff", "BackoffPolicy", "error_code", "is_transient"]


def is_transient(exc: BaseException) -> bool:
    """True for throttling, 5xx and connection trouble: errors any client may retry unchanged (the built-in
    handlers' own AWS calls use it). The delivery path classifies with :func:`worker.taxonomy.classify` instead."""
    return is_outage(exc)


#: One generator for every backoff: seeding a new ``random.Random`` reads the OS's entropy, which showed up in
#: profiles when each report and delete built its own.
_JITTER = random.Random()  # noqa: S311 - jitter, not security


@dataclass
class Backoff:
    """Jittered exponential backoff: ``uniform(d / 2, d)`` with ``d = min(cap, base * 2**n)`` after n failures."""

    base: float = 0.2
    cap: float = 20.0
    failures: int = 0
    rng: random.Random = field(default_factory=lambda: _JITTER)

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures = min(self.failures + 1, 32)
        return self.rng.uniform(delay / 2, delay)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How one kind of retry loop waits: jittered, doubling from ``base`` up to ``cap`` seconds."""

    base: float
    cap: float

    def start(self) -> Backoff:
        """The waits of one run of the loop, from the first."""
        return Backoff(self.base, self.cap)


# Every retry loop of the daemon, side by side.
#: Answering SageMaker, for as long as it takes (the message stays leased meanwhile).
REPORT_BACKOFF = BackoffPolicy(0.2, 20.0)
#: Listing an execution's steps (token verification, step context).
STEP_LOOKUP_BACKOFF = BackoffPolicy(0.2, 10.0)
#: One SQS call retried a few times (a continuation's send, a delete): it must get through while a lease lasts.
SQS_CALL_BACKOFF = BackoffPolicy(0.2, 5.0)
#: A continuation's send that failed after its tries, tried again while the delivery holds its message.
REQUEUE_BACKOFF = BackoffPolicy(1.0, 30.0)
#: A token verification SageMaker answered inconclusively (access denied, not listed yet): looked at again until
#: the grace after SQS took the message (:data:`worker.verify.VERIFY_GRACE`).
INCONCLUSIVE_BACKOFF = BackoffPolicy(2.0, 60.0)
#: A poller after a failed receive.
RECEIVE_BACKOFF = BackoffPolicy(0.5, 30.0)
#: The queue check at start-up.
STARTUP_BACKOFF = BackoffPolicy(0.5, 5.0)


def lease_renewal_backoff(tick: float) -> BackoffPolicy:
    """Renewal calls retried within a round: several tries fit in the half tick a renewal may take."""
    return BackoffPolicy(min(0.5, tick / 10), tick / 2)
