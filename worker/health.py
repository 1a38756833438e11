"""The worker's health, as ``/healthz`` and ``/readyz`` report it (served by :mod:`worker.endpoints`).

Ready means: handlers are loaded, the queue check at start-up passed (SQS answered ``GetQueueAttributes``), the
worker is not draining, and SQS answered the worker's latest call. Alive means the pollers make progress, or every
slot is busy (so not polling is right).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Health:
    """What /healthz and /readyz report."""

    stall_after: float = 90.0
    """Seconds without a finished receive (answered or failed) after which a non-saturated worker is stuck."""
    started: float = field(default_factory=time.monotonic)
    last_attempt: float = field(default_factory=time.monotonic)
    last_poll: float = 0.0
    last_poll_wall: float = 0.0
    running: bool = False
    draining: bool = False
    sqs_reachable: bool = False
    """SQS answered the queue check at start-up, then each receive since: the latest receive did not fail."""
    saturated: bool = False
    probe: Callable[[], bool] = lambda: True
    """Whether SQS answered the worker's last call of any kind (deletes and lease renewals included)."""

    def is_alive(self) -> bool:
        """The pollers are making progress, or every slot is busy (so not polling is right)."""
        return self.saturated or time.monotonic() - self.last_attempt < self.stall_after

    def queue_checked(self) -> None:
        """The start-up queue check passed: SQS is reachable, before the first long poll returns."""
        self.sqs_reachable = True

    def is_ready(self) -> bool:
        """Running, not draining, SQS answered the queue check and the latest receive, and the latest call."""
        return self.running and not self.draining and self.sqs_reachable and self.probe()
