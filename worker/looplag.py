"""How late the event loop runs what is due: the lag every task on the loop sees, sampled twice a second.

A sync call inside an async handler, or a burst of work, holds the loop; everything else (lease renewals, reports,
health probes) then runs late by as much. The samples feed the ``callback_worker_event_loop_lag_seconds`` histogram.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Seconds between samples.
INTERVAL = 0.5


class LoopLag:
    """Sleeps ``interval`` seconds at a time and reports how much later than asked each sleep ended."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.on_sample: Callable[[float], None] | None = None
        """Called with each lag, in seconds."""
        self.worst = 0.0
        """The largest lag seen so far, in seconds."""

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - asked)
            self.worst = max(self.worst, lag)
            if self.on_sample is not None:
                self.on_sample(lag)
