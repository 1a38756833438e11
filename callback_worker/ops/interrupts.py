"""Hold Ctrl-C (SIGINT) and SIGTERM while a pair of calls that belong together runs, then act on them.

``dlq redrive`` copies a message to the source queue and then deletes it from the dead-letter queue; stopped between
the two, the message would be in both queues. Inside :func:`deferred_interrupts` a SIGINT or SIGTERM is only
noted; when the block has finished, :class:`KeyboardInterrupt` is raised, which the operator commands report as
"interrupted" (exit 130). Only the main thread can take signals over; elsewhere the block runs unchanged.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block to its end despite SIGINT/SIGTERM; raise KeyboardInterrupt afterwards if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def note(signum: int, _: FrameType | None) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt
