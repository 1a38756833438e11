"""The daemon's two clocks, injected so that a test can step each on its own.

* ``monotonic`` — for everything measured on this replica: lease deadlines, renewal schedules, the 12-hour budget
  of a receipt, backoffs, cache ages, how long a handler ran. It never jumps when NTP steps the system clock.
* ``wall`` — only where another system's clock is spoken: a continuation's legacy ``notBefore`` written by a replica
  of an earlier version, and the informational timestamps in logs. The decisions that compare times across replicas
  use SQS's own timestamps (``SentTimestamp``, ``ApproximateFirstReceiveTimestamp``) instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clocks:
    """A monotonic clock and a wall clock, both in seconds."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


SYSTEM_CLOCKS = Clocks()
