"""The one door of the worker's SageMaker calls: paced by the process's :class:`~worker.ratelimit.RateLimiter`,
classified (throttled, unreachable, answered) and counted.

Reports (:mod:`worker.report`), token verification and step-context look-ups (:mod:`worker.step_context`) all
call through one :class:`SageMakerCalls`, so one limiter paces them all and one flag says whether SageMaker answers
(``/readyz``). botocore's own retries are off on the worker's SageMaker client (:func:`worker.app.sagemaker_config`):
every attempt passes through here, and the callers retry with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from callback_worker.worker.logs import get_logger
from callback_worker.worker.ratelimit import RateLimiter
from callback_worker.worker.taxonomy import is_outage, is_throttling

T = TypeVar("T")
log = get_logger("worker.sagemaker_calls")
__all__ = ["SageMakerCalls", "is_throttling"]


class SageMakerCalls:
    """Runs SageMaker calls through the rate limiter; counts throttled calls and knows whether SageMaker answers."""

    def __init__(self, limiter: RateLimiter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = limiter or RateLimiter()
        self.clock = clock
        self.calls = 0
        """Calls made (attempts, each throttled or failed one included)."""
        self.throttled = 0
        """Calls SageMaker answered with a throttling error."""
        self.wait_seconds = 0.0
        """Time calls spent waiting for the limiter, summed."""
        self.reachable = True
        """False from a call that failed for want of SageMaker (5xx, no connection) until one is answered."""

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation()`` once it is its turn; its errors propagate, after they were recorded."""
        asked = self.clock()
        sent = await self.limiter.acquire()
        self.wait_seconds += max(0.0, self.clock() - asked)
        self.calls += 1
        try:
            result = await operation()
        except Exception as exc:
            throttled = is_throttling(exc)
            self.throttled += throttled
            if throttled or not is_outage(exc):
                self.reachable = True  # SageMaker answered, if not as hoped
                self._record(sent, throttled=throttled)
            else:
                self.reachable = False
            raise
        self.reachable = True
        self.limiter.record(sent, throttled=False)
        return result

    def _record(self, sent: float, *, throttled: bool) -> None:
        cuts = self.limiter.decreases
        self.limiter.record(sent, throttled=throttled)
        if self.limiter.decreases > cuts:
            log.info("SageMaker throttles this process; its calls slowed down", rate_per_s=round(self.rate, 2))

    @property
    def rate(self) -> float:
        """The limiter's current rate in calls per second (``inf`` while unlimited)."""
        rate = self.limiter.rate
        return float("inf") if rate is None else rate
