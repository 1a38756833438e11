"""Operator input checked by the worker's own rules before anything is sent.

Tokens must match :data:`worker.message.TOKEN_PATTERN`; execution ARNs :data:`worker.message.EXECUTION_ARN_PATTERN`;
outputs go through :func:`worker.outcome.success` and reasons through :func:`worker.outcome.failure`, so a Success or
Failure sent by hand is the very request (ClientRequestToken included) the worker would send. Every refusal is a
:class:`~callback_worker.ops.errors.UsageError`; no message ever repeats a token.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Sequence

from callback_worker.config.limits import MAX_FAILURE_REASON, MAX_OUTPUTS
from callback_worker.ops.errors import UsageError
from callback_worker.worker.handler import JSONValue
from callback_worker.worker.message import EXECUTION_ARN_PATTERN, TOKEN_PATTERN
from callback_worker.worker.outcome import Failure, Success, failure, success

_PREVIEW = 60
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_TOKEN_LENGTH = 10


def check_token(token: str) -> str:
    """``token`` if it is 10 letters and digits; the error says what is wrong without showing it."""
    if TOKEN_PATTERN.fullmatch(token):
        return token
    problems = [] if len(token) == _TOKEN_LENGTH else [f"it has {len(token)} characters"]
    if any(char not in _TOKEN_ALPHABET for char in token):
        problems.append("it holds characters other than letters and digits")
    raise UsageError(f"a callback token is {_TOKEN_LENGTH} letters and digits; {' and '.join(problems)}")


def check_execution_arn(arn: str) -> str:
    """``arn`` if it is a pipeline execution ARN."""
    if EXECUTION_ARN_PATTERN.fullmatch(arn):
        return arn
    raise UsageError(
        f"{_preview(arn)} is not a pipeline execution ARN "
        "(arn:aws:sagemaker:REGION:ACCOUNT:pipeline/PIPELINE/execution/ID)"
    )


def parse_pairs(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` items (split at the first ``=``) as pairs; names must be present and distinct."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            raise UsageError(f"{option} {_preview(item)} is not NAME=VALUE")
        if not name:
            raise UsageError(f"{option} {_preview(item)} has no name before '='")
        if name in seen:
            raise UsageError(f"{option} {_preview(name)} is given more than once")
        seen.add(name)
        pairs.append((name, value))
    return pairs


def success_outcome(outputs: Sequence[tuple[str, str]]) -> Success:
    """The Success the worker would send for these outputs, or a UsageError naming the first bad one."""
    if len(outputs) > MAX_OUTPUTS:
        raise UsageError(f"{len(outputs)} outputs given; SageMaker accepts at most {MAX_OUTPUTS}")
    outcome = success(dict(outputs))
    if isinstance(outcome, Failure):
        raise UsageError(f"invalid {outcome.reason}")
    return outcome


def failure_outcome(reason: str) -> Failure:
    """The Failure the worker would send for ``reason``; an empty or over-long reason is refused, not cut."""
    text = reason.strip()
    if not text:
        raise UsageError("--reason is empty")
    if len(text) > MAX_FAILURE_REASON:
        raise UsageError(f"--reason is {len(text)} characters; SageMaker accepts at most {MAX_FAILURE_REASON}")
    return failure(text)


def parse_arguments(pairs: Sequence[tuple[str, str]]) -> dict[str, JSONValue]:
    """Step arguments: each value parsed as JSON when it parses (``5``, ``true``, ``[1]``), else kept as text."""
    return {name: json_or_text(value) for name, value in pairs}


def json_or_text(text: str) -> JSONValue:
    """``text`` parsed as JSON, or ``text`` itself; NaN and Infinity stay text (they are not JSON)."""
    try:
        value: JSONValue = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return text
    return value


def new_token() -> str:
    """A random callback token."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(_TOKEN_LENGTH))


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _preview(text: str) -> str:
    return repr(text if len(text) <= _PREVIEW else text[:_PREVIEW] + "...")
