"""Fault injection: throttling, server errors and latency, per operation, for reliability tests.

Knobs (each a default for every operation, and overridable per operation):

``throttle``
    probability that a request is answered ``ThrottlingException`` (HTTP 400, retried by botocore) *before*
    the operation runs: a throttled request changed nothing.
``error``
    probability of ``InternalFailure`` (HTTP 500, retried by botocore), also before the operation runs.
``error_after``
    probability of ``InternalFailure`` *after* the operation ran and changed state: the client sees a 500
    although its request took effect, which is how idempotent replays of ``SendPipelineExecutionStep*``
    come about. Off unless asked for.
``latency`` / ``jitter``
    seconds added to every request: ``latency`` plus a uniformly random amount up to ``jitter``.

Command line (``callback-worker emulate`` / ``python -m callback_worker.emulator``)::

    --throttle-rate 0.2 --error-rate 0.05 --error-after-rate 0.01 --latency 0.01 --jitter 0.005 --seed 7
    --fault SendPipelineExecutionStepSuccess:throttle=0.5,latency=0.1   (repeatable)

Environment (used when the flag is absent)::

    CALLBACK_WORKER_EMULATOR_THROTTLE_RATE, CALLBACK_WORKER_EMULATOR_ERROR_RATE,
    CALLBACK_WORKER_EMULATOR_ERROR_AFTER_RATE, CALLBACK_WORKER_EMULATOR_LATENCY,
    CALLBACK_WORKER_EMULATOR_JITTER, CALLBACK_WORKER_EMULATOR_SEED,
    CALLBACK_WORKER_EMULATOR_FAULTS="SendPipelineExecutionStepSuccess:throttle=0.5;StartPipelineExecution:error=0.1"

From Python: ``FaultConfig(default=OperationFaults(throttle=0.2), seed=7)``, or
``FaultConfig().with_operation("SendPipelineExecutionStepSuccess", throttle=1.0)``, given to the server at
start or assigned to ``server.faults`` while it runs. With a ``seed`` the sequence of injected faults is
reproducible for a given sequence of requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from callback_worker.emulator.errors import InternalFailureError, ThrottlingError
from callback_worker.emulator.protocol import OPERATION_NAMES

ENV_PREFIX = "CALLBACK_WORKER_EMULATOR_"
_RATES = ("throttle", "error", "error_after")
_DURATIONS = ("latency", "jitter")


@dataclass(frozen=True)
class OperationFaults:
    """Fault rates (probabilities, 0 to 1) and added latency (seconds) for one operation."""

    throttle: float = 0.0
    error: float = 0.0
    error_after: float = 0.0
    latency: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"the {name} rate must be between 0 and 1, not {getattr(self, name)}")
        for name in _DURATIONS:
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        if self.throttle + self.error > 1.0:
            raise ValueError("the throttle and error rates must add up to at most 1")


@dataclass(frozen=True)
class FaultConfig:
    """Faults for every operation (``default``), overrides by operation name, and the random seed."""

    default: OperationFaults = OperationFaults()
    operations: Mapping[str, OperationFaults] = field(default_factory=lambda: MappingProxyType({}))
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.operations) - set(OPERATION_NAMES))
        if unknown:
            raise ValueError(f"no such operation {unknown}; operations: {', '.join(OPERATION_NAMES)}")

    def for_operation(self, operation: str) -> OperationFaults:
        """The faults that apply to ``operation``."""
        return self.operations.get(operation, self.default)

    def with_operation(self, operation: str, **changes: float) -> FaultConfig:
        """A copy in which ``operation`` has the current faults of that operation with ``changes`` applied."""
        updated = dataclasses.replace(self.for_operation(operation), **changes)
        return dataclasses.replace(self, operations=MappingProxyType({**self.operations, operation: updated}))

    @property
    def active(self) -> bool:
        """Whether any fault or latency is configured."""
        return any(faults != OperationFaults() for faults in (self.default, *self.operations.values()))


def parse_operation_fault(spec: str, config: FaultConfig) -> FaultConfig:
    """Apply one ``Operation:knob=value[,knob=value...]`` spec (knobs as in :class:`OperationFaults`).

    Raises :class:`ValueError` naming what is wrong.
    """
    operation, separator, settings = spec.partition(":")
    if not separator or not settings:
        raise ValueError(f"{spec!r}: expected Operation:knob=value[,knob=value...]")
    knobs = {item.name for item in dataclasses.fields(OperationFaults)}
    changes: dict[str, float] = {}
    for setting in settings.split(","):
        knob, equals, value = setting.partition("=")
        knob = knob.strip().replace("-", "_")
        if not equals or knob not in knobs:
            raise ValueError(f"{spec!r}: {setting!r} is not knob=value with a knob among {sorted(knobs)}")
        try:
            changes[knob] = float(value)
        except ValueError:
            raise ValueError(f"{spec!r}: {value!r} is not a number") from None
    if operation.strip() not in OPERATION_NAMES:
        raise ValueError(f"{spec!r}: no such operation; operations: {', '.join(OPERATION_NAMES)}")
    return config.with_operation(operation.strip(), **changes)


def build_config(default: OperationFaults, specs: Iterable[str] = (), *, seed: int | None = None) -> FaultConfig:
    """A :class:`FaultConfig` from default faults and per-operation specs (applied in order)."""
    config = FaultConfig(default=default, seed=seed)
    for spec in specs:
        config = parse_operation_fault(spec, config)
    return config


def split_specs(text: str) -> list[str]:
    """The per-operation specs in ``CALLBACK_WORKER_EMULATOR_FAULTS`` (separated by ``;`` or whitespace)."""
    return [item for chunk in text.split(";") for item in chunk.split() if item]


class FaultInjector:
    """Decides, request by request, which configured fault to inject; counts what it injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._config = config or FaultConfig()
        self._random = random.Random(self._config.seed)  # noqa: S311 - reproducible test faults, not security
        #: Injected faults by ``(operation, kind)``; kind is ``throttle``, ``error`` or ``error_after``.
        self.counts: Counter[tuple[str, str]] = Counter()

    @property
    def config(self) -> FaultConfig:
        """The faults in force."""
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)  # noqa: S311 - reproducible test faults, not security

    def injected(self, operation: str, kind: str) -> int:
        """How many faults of ``kind`` were injected into ``operation``."""
        return self.counts[(operation, kind)]

    async def before(self, operation: str) -> None:
        """Delay, then maybe raise ``ThrottlingException`` or ``InternalFailure``; runs before the operation."""
        faults = self._config.for_operation(operation)
        delay = faults.latency + (self._random.uniform(0.0, faults.jitter) if faults.jitter else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if not (faults.throttle or faults.error):
            return
        roll = self._random.random()
        if roll < faults.throttle:
            self.counts[(operation, "throttle")] += 1
            raise ThrottlingError("Rate exceeded")
        if roll < faults.throttle + faults.error:
            self.counts[(operation, "error")] += 1
            raise InternalFailureError("We encountered an internal error. Please try again. (injected fault)")

    def after(self, operation: str) -> None:
        """Maybe raise ``InternalFailure`` although the operation already took effect."""
        faults = self._config.for_operation(operation)
        if faults.error_after and self._random.random() < faults.error_after:
            self.counts[(operation, "error_after")] += 1
            raise InternalFailureError(
                "We encountered an internal error. Please try again. (injected fault, after the change)"
            )


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """``CALLBACK_WORKER_EMULATOR_<name>`` from ``environ``, if set and not empty."""
    value = environ.get(ENV_PREFIX + name, "").strip()
    return value or None
