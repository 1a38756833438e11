"""An asyncio event loop on virtual time, for tests that drive the daemon in memory (the delivery property test, the
fault matrix): ``asyncio.sleep``, backoffs and timeouts take no real time, and a run is the same every time."""

from __future__ import annotations

import asyncio
import selectors

#: Virtual seconds each loop iteration takes at least (a task spinning without sleeping cannot freeze time).
CREEP = 1e-3


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0


class _VirtualSelector(selectors.SelectSelector):
    """Never blocks: when nothing is ready, the loop's virtual time jumps to the next timer instead."""

    def __init__(self, time: VirtualTime) -> None:
        super().__init__()
        self._time = time

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                ready = super().select(0.05)  # only another thread could wake the loop now
            else:
                self._time.now += max(0.0, timeout)
        self._time.now += CREEP
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual: ``asyncio.sleep`` and timeouts take no real time."""

    def __init__(self) -> None:
        self.virtual = VirtualTime()
        super().__init__(_VirtualSelector(self.virtual))

    def time(self) -> float:
        return self.virtual.now
