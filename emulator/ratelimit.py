"""Request rate limits per operation, answered as SageMaker answers them: ``ThrottlingException`` (HTTP 400).

SageMaker throttles its control-plane APIs per account and region with a token bucket per operation: a bucket
holds up to ``burst`` requests, refills at ``rate`` per second, and a request finding it empty is refused before it
runs (it changed nothing). Unlike the random ``--throttle-rate`` of :mod:`emulator.faults`, a limit throttles only
clients that ask too fast, so it is what a client-side rate limiter is measured against.

Command line (``callback-worker emulate`` / ``python -m callback_worker.emulator``), repeatable::

    --rate-limit SendPipelineExecutionStepSuccess=25     one operation
    --rate-limit 'Send*=25'                              each operation the pattern matches, a bucket of its own
    --rate-limit '*=50'                                  every operation (an exact name or a narrower pattern wins)

Environment (used when the flag is absent): ``CALLBACK_WORKER_EMULATOR_RATE_LIMITS="Send*=25;*=100"``.
The burst is one second's worth of requests (at least one). A rate of ``0`` removes the limit of what it matches.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from callback_worker.emulator.errors import ThrottlingError
from callback_worker.emulator.protocol import OPERATION_NAMES


@dataclass
class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False, default=-1.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Take one request's token at monotonic time ``now``; False if the bucket is empty."""
        if self.updated >= 0.0:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True)
class RateLimit:
    """Requests per second allowed for the operations ``pattern`` matches (a name, or a glob such as ``Send*``)."""

    pattern: str
    rate: float

    def matches(self, operation: str) -> bool:
        return fnmatch.fnmatchcase(operation, self.pattern)

    @property
    def specificity(self) -> tuple[int, int]:
        """Exact names first, then patterns with more literal characters."""
        wildcards = sum(self.pattern.count(char) for char in "*?[")
        return (0 if wildcards else 1, len(self.pattern) - wildcards)


def parse_rate_limit(spec: str) -> RateLimit:
    """One ``OPERATION=RPS`` spec; :class:`ValueError` naming what is wrong."""
    pattern, equals, value = spec.partition("=")
    pattern = pattern.strip()
    if not equals or not pattern:
        raise ValueError(f"{spec!r}: expected OPERATION=RPS, for example SendPipelineExecutionStepSuccess=25")
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"{spec!r}: {value.strip()!r} is not a number") from None
    if not rate >= 0.0 or rate == float("inf"):
        raise ValueError(f"{spec!r}: the rate must be a finite number of requests per second, at least 0")
    if not any(fnmatch.fnmatchcase(name, pattern) for name in OPERATION_NAMES):
        raise ValueError(f"{spec!r}: matches no operation; operations: {', '.join(OPERATION_NAMES)}")
    return RateLimit(pattern, rate)


def split_rate_limits(text: str) -> list[str]:
    """The specs in ``CALLBACK_WORKER_EMULATOR_RATE_LIMITS`` (separated by ``;``, ``,`` or whitespace)."""
    return [item for chunk in text.replace(",", ";").split(";") for item in chunk.split() if item]


class RateLimiter:
    """A token bucket per limited operation; refuses requests that find theirs empty, and counts them."""

    def __init__(self, limits: Iterable[RateLimit] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = sorted(limits, key=lambda limit: limit.specificity, reverse=True)
        self.clock = clock
        self._buckets: dict[str, TokenBucket | None] = {}
        #: Requests refused, by operation.
        self.throttled: Counter[str] = Counter()

    @classmethod
    def from_specs(cls, specs: Iterable[str], clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        """A limiter for ``OPERATION=RPS`` specs; :class:`ValueError` naming a bad one."""
        return cls([parse_rate_limit(spec) for spec in specs], clock)

    @property
    def active(self) -> bool:
        return any(limit.rate > 0 for limit in self.limits)

    def rate_of(self, operation: str) -> float | None:
        """Requests per second allowed for ``operation``; None if unlimited."""
        limit = next((limit for limit in self.limits if limit.matches(operation)), None)
        return limit.rate if limit is not None and limit.rate > 0 else None

    def check(self, operation: str) -> None:
        """Raise ``ThrottlingException`` if ``operation``'s bucket is empty; otherwise take a token."""
        if operation not in self._buckets:
            rate = self.rate_of(operation)
            self._buckets[operation] = None if rate is None else TokenBucket(rate, max(1.0, rate))
        bucket = self._buckets[operation]
        if bucket is not None and not bucket.take(self.clock()):
            self.throttled[operation] += 1
            raise ThrottlingError("Rate exceeded")
