"""A client-side adaptive rate limiter (AIMD) for the worker's SageMaker calls.

SageMaker throttles its APIs per account and region, and every replica — and everything else in the account that
calls SageMaker — shares that budget. Retrying throttled calls only spends it faster. So each process paces its
SageMaker calls through one limiter:

- it starts **unlimited** (or at ``max_rate``, the static cap ``CALLBACK_WORKER_SAGEMAKER_MAX_RPS``);
- on a throttling response it **halves** its rate — the rate it actually sent at over the last two seconds, if that
  is lower — at most once per round: a throttled call sent before the last decrease says nothing about the new
  rate (TCP's one cut per window);
- while calls succeed it **raises** the rate additively, by a slope fixed at the last decrease: each success adds
  a step, and each second of successes as much again, so that the rate is back where it was cut after
  :data:`RECOVERY_CALLS` successes or :data:`RECOVERY_SECONDS` seconds, whichever comes first (at a low rate 50
  calls take long: the time term keeps recovery quick there), and it keeps probing beyond at that slope, never
  above twice the rate it actually sends at, nor above ``max_rate``.

Calls wait their turn in arrival order; a limited rate spaces them evenly (no burst). Errors that are not
throttling (5xx, connection trouble) leave the rate alone: they say the service is down, not that it is asked
too often.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

#: Successes after a decrease by which the rate is back where it was cut (at the latest).
RECOVERY_CALLS = 50
#: Seconds of successes after a decrease by which the rate is back where it was cut (at the latest).
RECOVERY_SECONDS = 8.0
#: The lowest rate a throttled limiter falls to (calls per second).
MIN_RATE = 0.5
#: Seconds over which the rate actually sent is measured.
WINDOW = 2.0
#: The shortest span a rate is measured over (just after start-up).
MIN_SPAN = 0.25


class RateLimiter:
    """Paces calls: :meth:`acquire` before each, :meth:`record` with its result after."""

    def __init__(
        self,
        *,
        max_rate: float | None = None,
        min_rate: float = MIN_RATE,
        recovery_calls: int = RECOVERY_CALLS,
        recovery_seconds: float = RECOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_rate = max_rate
        self.min_rate = min(min_rate, max_rate) if max_rate else min_rate
        self.recovery_calls = recovery_calls
        self.recovery_seconds = recovery_seconds
        self.clock = clock
        self.sleep = sleep
        self.rate: float | None = max_rate
        """Calls per second allowed now; None while unlimited."""
        self.step = 0.0
        """What each success adds to the rate (calls per second), fixed at the last decrease."""
        self.slope = 0.0
        """What each second of successes adds to the rate (calls per second per second), fixed likewise."""
        self.decreases = 0
        self.waiting = 0
        """Calls waiting for their turn now."""
        self._next = -float("inf")
        self._decreased_at = -float("inf")
        self._grown_at = -float("inf")
        self._sent: deque[float] = deque()
        self._first = -float("inf")
        self._turn = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for this call's turn; returns its send time, to give to :meth:`record`."""
        if self.rate is None:
            return self._mark(self.clock())
        self.waiting += 1
        try:
            async with self._turn:  # FIFO: the longest waiting call goes first
                while (rate := self.rate) is not None and (delay := self._next - self.clock()) > 0:
                    await self.sleep(delay)
                now = self.clock()
                if rate is not None:
                    self._next = max(self._next, now) + 1.0 / rate
                return self._mark(now)
        finally:
            self.waiting -= 1

    def record(self, sent_at: float, *, throttled: bool) -> None:
        """The call sent at ``sent_at`` was answered: throttled, or not."""
        if throttled:
            if sent_at >= self._decreased_at:
                self._decrease()
        elif self.rate is not None:
            now = self.clock()
            ceiling = max(2.0 * self.measured(), 2.0 * self.min_rate)
            if self.max_rate is not None:
                ceiling = min(ceiling, self.max_rate)
            grown = self.rate + self.step + self.slope * max(0.0, now - self._grown_at)
            self.rate = max(self.rate, min(ceiling, grown))
            self._grown_at = now

    def measured(self) -> float:
        """Calls per second sent over the last :data:`WINDOW` seconds (or since the first call, if sooner)."""
        now = self.clock()
        self._forget(now)
        return len(self._sent) / max(min(WINDOW, now - self._first), MIN_SPAN)

    def _decrease(self) -> None:
        sent = self.measured()
        base = sent if self.rate is None else min(self.rate, max(sent, self.min_rate))
        self.rate = max(self.min_rate, base / 2.0)
        self.step = self.rate / self.recovery_calls
        self.slope = self.rate / self.recovery_seconds
        self.decreases += 1
        now = self._decreased_at = self._grown_at = self.clock()
        self._next = max(self._next, now) + 1.0 / self.rate

    def _mark(self, now: float) -> float:
        if not self._sent and self._first == -float("inf"):
            self._first = now
        self._sent.append(now)
        self._forget(now)
        return now

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - WINDOW:
            self._sent.popleft()
