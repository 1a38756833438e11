"""A handler for the in-flight benchmark: waits ``BENCH_HOLD_SECONDS`` on the event loop, then reports how late.

Its ``lag_ms`` output is how much later than asked the event loop woke it: the loop's lag at that moment.
"""

from __future__ import annotations

import asyncio
import os

from callback_worker.worker import CallbackContext


class HoldHandler:
    def __init__(self) -> None:
        self.seconds = float(os.environ.get("BENCH_HOLD_SECONDS", "120"))

    async def __call__(self, context: CallbackContext) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(self.seconds)
        return {"lag_ms": round((loop.time() - started - self.seconds) * 1000, 3)}
