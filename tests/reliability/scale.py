"""How big the reliability scenarios are: ``RELIABILITY_SCALE=ci`` (default) or ``full``, and the seed.

Environment knobs:

- ``RELIABILITY_SCALE``: ``ci`` fits the default test run on a 2-core machine; ``full`` is the size the issue asks
  for (≥ 1,000 executions through replicas being killed), for ``make reliability-full``.
- ``RELIABILITY_SEED``: seeds every random choice the tests make (fault RNG, victim and timing of kills,
  hypothesis); the same seed makes the same choices, though the interleaving of processes still varies.
- ``RELIABILITY_LOCALSTACK``: ``auto`` (default: use LocalStack when it is installed, else skip those tests),
  ``install`` (install it on first use, about 2 minutes) or ``off``.
- ``RELIABILITY_REPORT``: a path; the figures of the run are written there as JSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SCALE_ENV = "RELIABILITY_SCALE"
SEED_ENV = "RELIABILITY_SEED"
DEFAULT_SEED = 20_260_611


@dataclass(frozen=True)
class Scale:
    """The size of every scenario."""

    name: str
    chaos_executions_moto: int
    """Scenario 1 on moto (moto slows down quadratically with queue depth: keep it modest)."""
    chaos_executions_localstack: int
    """Scenarios 1 and 5 on LocalStack."""
    replicas: int
    kill_interval: float
    """Mean seconds between two SIGKILLs."""
    rolling_executions: int
    rolling_rounds: int
    """How many times every replica is SIGTERMed in turn."""
    fuzz_parse_examples: int
    fuzz_daemon_tokens: int
    """Mutated bodies that keep a real token, sent through the running daemon."""
    fuzz_daemon_garbage: int
    """Bodies without a usable token, sent through the running daemon."""
    outage_executions: int
    timeout: float
    """pytest-timeout of each scenario, in seconds."""


CI = Scale(
    name="ci",
    chaos_executions_moto=120,
    chaos_executions_localstack=60,
    replicas=3,
    kill_interval=3.0,
    rolling_executions=45,
    rolling_rounds=1,
    fuzz_parse_examples=300,
    fuzz_daemon_tokens=100,
    fuzz_daemon_garbage=60,
    outage_executions=40,
    timeout=240,
)
FULL = Scale(
    name="full",
    chaos_executions_moto=1000,
    chaos_executions_localstack=2000,
    replicas=3,
    kill_interval=3.0,
    rolling_executions=150,
    rolling_rounds=3,
    fuzz_parse_examples=5000,
    fuzz_daemon_tokens=600,
    fuzz_daemon_garbage=400,
    outage_executions=100,
    timeout=1800,
)
SCALES = {scale.name: scale for scale in (CI, FULL)}


def current_scale() -> Scale:
    """The scale named by ``RELIABILITY_SCALE`` (``ci`` when unset)."""
    name = os.environ.get(SCALE_ENV, "ci").strip().lower() or "ci"
    if name not in SCALES:
        raise ValueError(f"{SCALE_ENV}={name!r}: expected one of {', '.join(SCALES)}")
    return SCALES[name]


def current_seed() -> int:
    """The seed named by ``RELIABILITY_SEED`` (a fixed default when unset)."""
    return int(os.environ.get(SEED_ENV, "").strip() or DEFAULT_SEED)
