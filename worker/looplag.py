"""How late the event loop runs what is due: the lag every task on the loop sees, sampled twice a second.

A sync call inside an async handler, or a burst of work, holds the loop; everything else (lease renewals, reports,
health probes) then runs late by as much. Each sample is published (:class:`worker.events.LoopLagSampled`); the
metrics make a histogram of them.
"""

from __future__ import annotations

import asyncio

from callback_worker.worker.events import NO_EVENTS, Events, LoopLagSampled

#: Seconds between samples.
INTERVAL = 0.5


class LoopLag:
    """Sleeps ``interval`` seconds at a time and reports how much later than asked each sleep ended."""

    def __init__(self, interval: float = INTERVAL, events: Events = NO_EVENTS) -> None:
        self.interval = interval
        self.events = events
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
            self.events.publish(LoopLagSampled(lag))
