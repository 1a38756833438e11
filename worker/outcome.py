"""Outcomes of a callback step and their conversion to SageMaker's request shapes.

Every limit the service enforces and botocore does not is checked here, before anything is sent: a handler's bad
outputs become a Failure that says which output and why, and a long failure reason is cut to the service's maximum
with a visible marker. The ClientRequestToken is derived from the token and the outcome, so a redelivered message
that reaches the same outcome repeats the very same request, which the service treats as a replay.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callback_worker.config.limits import MAX_FAILURE_REASON, MAX_OUTPUT_NAME, MAX_OUTPUT_VALUE, MAX_OUTPUTS

TRUNCATION_MARKER = " [truncated]"
# An int this wide has more than MAX_OUTPUT_VALUE digits; str() of a much wider one raises ValueError
# (Python's int-to-str digit limit) instead of giving text that the length check could refuse.
_MAX_INT_BITS = 3500


@dataclass(frozen=True, slots=True)
class Success:
    """The step succeeded with these outputs (already converted to strings, in the handler's order)."""

    outputs: tuple[tuple[str, str], ...] = ()

    def request(self, token: str) -> dict[str, Any]:
        """Keyword arguments of ``SendPipelineExecutionStepSuccess``."""
        return {
            "CallbackToken": token,
            "OutputParameters": [{"Name": name, "Value": value} for name, value in self.outputs],
            "ClientRequestToken": client_request_token(token, self),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """The step failed for ``reason`` (at most 256 characters)."""

    reason: str

    def request(self, token: str) -> dict[str, Any]:
        """Keyword arguments of ``SendPipelineExecutionStepFailure``."""
        return {
            "CallbackToken": token,
            "FailureReason": self.reason,
            "ClientRequestToken": client_request_token(token, self),
        }


Outcome = Success | Failure


def failure(reason: str) -> Failure:
    """A Failure whose reason fits the service's limit; a longer one ends with ``TRUNCATION_MARKER``."""
    reason = reason.strip() or "the callback handler failed without a reason"
    if len(reason) > MAX_FAILURE_REASON:
        reason = reason[: MAX_FAILURE_REASON - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    return Failure(reason)


def success(outputs: object) -> Outcome:
    """Convert a handler's return value into a Success, or a Failure naming the first output that cannot be sent."""
    if not isinstance(outputs, Mapping):
        return failure(f"handler returned {type(outputs).__name__}, expected a mapping of output name to value")
    if len(outputs) > MAX_OUTPUTS:
        return failure(f"handler returned {len(outputs)} outputs; SageMaker accepts at most {MAX_OUTPUTS}")
    converted: list[tuple[str, str]] = []
    for name, value in outputs.items():
        text, problem = _convert(name, value)
        if problem is not None:
            return failure(f"output {_short(name)}: {problem}")
        converted.append((name, text))
    return Success(tuple(converted))


def _convert(name: object, value: object) -> tuple[str, str | None]:
    """The wire text of one output, or a problem that keeps it from being sent."""
    if not isinstance(name, str):
        return "", f"name is {type(name).__name__}, not a string"
    if len(name) > MAX_OUTPUT_NAME:
        return "", f"name is {len(name)} characters; SageMaker accepts at most {MAX_OUTPUT_NAME}"
    text = output_text(value)
    if text is None:
        return "", _unsendable(value)
    if len(text) > MAX_OUTPUT_VALUE:
        return "", f"value is {len(text)} characters; SageMaker accepts at most {MAX_OUTPUT_VALUE}"
    return text, None


def _unsendable(value: object) -> str:
    if isinstance(value, float):
        return f"value {value} is not a finite number"
    if isinstance(value, int):
        return f"value is an integer of more than {MAX_OUTPUT_VALUE} digits"
    return f"value of type {type(value).__name__} is not str, int, float or bool"


def output_text(value: object) -> str | None:
    """The wire form of one output value: str as is, bool as true/false, numbers as decimal text; else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    # int.__repr__ / float.__repr__ rather than str() / repr(): a subclass (numpy.float64 is one) may render itself
    # as something other than decimal text, such as "np.float64(1.5)".
    if isinstance(value, int):
        return int.__repr__(value) if value.bit_length() <= _MAX_INT_BITS else None
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else None
    return None


def client_request_token(token: str, outcome: Outcome) -> str:
    """A deterministic idempotency token (64 hex characters) for this token and this outcome."""
    if isinstance(outcome, Success):
        payload: list[object] = [token, "success", [list(pair) for pair in outcome.outputs]]
    else:
        payload = [token, "failure", outcome.reason]
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _short(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."
