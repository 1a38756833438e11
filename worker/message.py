"""Parsing an SQS body into a :class:`CallbackMessage`, or a :class:`~worker.errors.MalformedMessage` saying why not.

The body a CallbackStep sends is ``{"token", "pipelineExecutionArn", "arguments", "status"}``. Keys are matched
case-insensitively (the API text also writes ``Status``); ``arguments`` keep their JSON types. A body the worker
re-queued itself for a :class:`~worker.handler.Retry` or a crash retry carries one more key, ``CONTINUATION_KEY``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.handler import JSONValue
from callback_worker.worker.logs import mask_token_like
from callback_worker.worker.outcome import Failure, Outcome, Success, failure
from callback_worker.worker.outcome import success as convert_outputs
from callback_worker.worker.signing import Keyring

TOKEN_PATTERN = re.compile(r"[a-zA-Z0-9]{10}")
EXECUTION_ARN_PATTERN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:pipeline/(?P<pipeline>[^/]+)/execution/(?P<execution>[^/]+)"
)
#: The key under which the worker stores its own continuation data in a re-queued body.
CONTINUATION_KEY = "callbackWorkerContinuation"
#: The member of the continuation field holding its seal (:mod:`worker.signing`).
SEAL_KEY = "seal"
_SEAL_DOMAIN = b"sagemaker-callback-worker continuation v1\n"
_STRING_PREVIEW = 80
#: A ``"token"`` member with a well-formed value, found in a body the JSON parser gave up on (nested too deeply to
#: read, or broken further on): key case-insensitive like the parser's, no escapes.
_RAW_TOKEN = re.compile(r'"token"\s*:\s*"([A-Za-z0-9]{10})"', re.IGNORECASE)
_RAW_ARN = re.compile(r'"pipelineExecutionArn"\s*:\s*"([^"\\]{1,2048})"', re.IGNORECASE)


class Status(StrEnum):
    """Why SageMaker sent the message."""

    EXECUTING = "Executing"
    STOPPING = "Stopping"


@dataclass(frozen=True, slots=True)
class Continuation:
    """Where a re-queued callback left off."""

    attempt: int = 1
    continuations: int = 0
    state: JSONValue = None
    not_before: float = 0.0
    origin_message_id: str = ""
    """The chain's id: the message id of the SageMaker message the chain started from."""
    link: int = 0
    """The link's number in its chain: 0 for SageMaker's own message, one more at every re-queue."""
    wait: float | None = None
    """Seconds after SQS sent this link (its ``SentTimestamp``) that it is due: measured on SQS's clock alone, so
    no replica's wall clock decides it. None in links of earlier versions, which only carry ``not_before``."""
    answer: Outcome | None = None
    """A decided answer handed on by a delivery that could not report it (a shutdown, the receipt's 12 hours):
    the delivery of this link reports it, and never runs the handler."""

    def to_json(self) -> dict[str, JSONValue]:
        document: dict[str, JSONValue] = {
            "attempt": self.attempt,
            "continuations": self.continuations,
            "state": self.state,
            "notBefore": self.not_before,
            "originMessageId": self.origin_message_id,
            "link": self.link,
        }
        if self.wait is not None:
            document["wait"] = self.wait
        if self.answer is not None:
            document["answer"] = _answer_json(self.answer)
        return document


def _answer_json(answer: Outcome) -> dict[str, JSONValue]:
    if isinstance(answer, Failure):
        return {"kind": "failure", "reason": answer.reason}
    return {"kind": "success", "outputs": [[name, value] for name, value in answer.outputs]}


@dataclass(frozen=True, slots=True)
class CallbackMessage:
    """A callback message whose every field has been checked."""

    token: str
    pipeline_execution_arn: str
    pipeline_name: str
    execution_id: str
    arguments: dict[str, JSONValue]
    status: Status
    continuation: Continuation = field(default_factory=Continuation)

    distrusted: str | None = None
    """Why the body's continuation field was set aside (it could not be authenticated): the message is then a
    fresh delivery of its token. None when it had none, or it was accepted."""

    def to_body(self, continuation: Continuation, keyring: Keyring | None = None, *, arguments: bool = True) -> str:
        """The body of a re-queued copy of this message carrying ``continuation``, sealed under ``keyring``'s
        signing key when there is one; without the step's arguments when ``arguments`` is false. Raises TypeError /
        ValueError / RecursionError for a state that is not plain JSON."""
        document: dict[str, Any] = {
            "token": self.token,
            "pipelineExecutionArn": self.pipeline_execution_arn,
            "arguments": self.arguments if arguments else {},
            "status": self.status.value,
            CONTINUATION_KEY: continuation.to_json(),
        }
        text = _dump(document)
        if keyring is None:
            return text
        # Sealed as a receiver reads it: the body parsed back, so that what one side computes the other does too.
        fields = {key.lower(): value for key, value in json.loads(text).items()}
        document[CONTINUATION_KEY][SEAL_KEY] = keyring.sign(sealed_payload(fields))
        return _dump(document)


def _dump(document: dict[str, Any]) -> str:
    # ASCII escapes: text that arrived escaped (a lone surrogate, U+FFFF) stays sendable to SQS.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True)


def sealed_payload(fields: dict[str, Any]) -> bytes:
    """The bytes a continuation's seal covers: the body's token, execution ARN, status and arguments, and every
    member of its continuation field but the seal, as parsed (``fields`` keyed in lower case), in canonical JSON."""
    continuation = fields.get(CONTINUATION_KEY.lower())
    if isinstance(continuation, dict):
        continuation = {key: value for key, value in continuation.items() if key != SEAL_KEY}
    sealed = [fields.get(name) for name in ("token", "pipelineexecutionarn", "status", "arguments")]
    text = json.dumps([*sealed, continuation], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _SEAL_DOMAIN + text.encode()


def parse_message(body: str, keyring: Keyring | None = None) -> CallbackMessage:
    """Parse one SQS body. Raises :class:`MalformedMessage`, with ``token`` set when the token itself is valid.

    A continuation field is taken only when its seal checks out under one of ``keyring``'s keys (without a keyring,
    never). A continuation not taken makes the message a fresh delivery of its own token (``distrusted`` says why):
    its handler runs from the start, in a chain of its own, and nothing the field claims is reported.
    """
    document = _load_object(body)
    fields = {key.lower(): value for key, value in document.items()}
    token = fields.get("token")
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise MalformedMessage(f"'token' is missing or not 10 letters and digits ({_describe(token)})")
    arn = fields.get("pipelineexecutionarn")
    try:
        return _build(token, arn, fields, keyring)
    except MalformedMessage as exc:
        exc.token = token
        exc.pipeline_execution_arn = arn if isinstance(arn, str) else None
        raise


def _load_object(body: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = mask_token_like(str(exc)[:_STRING_PREVIEW])
        token, arn = _salvage(body)
        raise MalformedMessage(
            f"body is not JSON: {type(exc).__name__}: {detail}", token=token, pipeline_execution_arn=arn
        ) from None
    if not isinstance(document, dict):
        raise MalformedMessage(f"body is JSON {type(document).__name__}, not an object")
    return document


def _salvage(body: str) -> tuple[str | None, str | None]:
    """The token (and execution ARN) of a body the parser could not read, when the text names exactly one.

    A body nested too deeply for the parser still carries a valid token: it is answered with a Failure rather than
    left to the dead-letter queue, where its step would wait until someone answered it by hand.
    """
    token = _only(_RAW_TOKEN.findall(body))
    if token is None:
        return None, None
    return token, _only(_RAW_ARN.findall(body))


def _only(found: list[str]) -> str | None:
    return found[0] if len(set(found)) == 1 else None


def _build(token: str, arn: object, fields: dict[str, Any], keyring: Keyring | None) -> CallbackMessage:
    if not isinstance(arn, str):
        raise MalformedMessage(f"'pipelineExecutionArn' is missing or not a string ({_describe(arn)})")
    match = EXECUTION_ARN_PATTERN.fullmatch(arn)
    if match is None:
        raise MalformedMessage(f"'pipelineExecutionArn' is not a pipeline execution ARN ({_describe(arn)})")
    arguments = fields.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise MalformedMessage(f"'arguments' is {type(arguments).__name__}, not an object")
    continuation, distrusted = _admitted(fields, keyring)
    return CallbackMessage(
        token=token,
        pipeline_execution_arn=arn,
        pipeline_name=match["pipeline"],
        execution_id=match["execution"],
        arguments=arguments,
        status=_status(fields.get("status", Status.EXECUTING.value)),
        continuation=continuation,
        distrusted=distrusted,
    )


def _admitted(fields: dict[str, Any], keyring: Keyring | None) -> tuple[Continuation, str | None]:
    """The continuation the body may carry, and why its field was set aside if it was."""
    raw = fields.get(CONTINUATION_KEY.lower())
    if raw is None:
        return Continuation(), None
    if keyring is None:
        return Continuation(), "its continuation cannot be authenticated without a key"
    try:
        payload = sealed_payload(fields)
    except (ValueError, RecursionError):  # parsed, but nested too deeply to write out again (or to continue)
        raise MalformedMessage("the body is nested too deeply to check its continuation") from None
    problem = keyring.check(payload, raw.get(SEAL_KEY) if isinstance(raw, dict) else None)
    if problem is not None:
        return Continuation(), f"its continuation is not the worker's: {problem}"
    return _continuation(raw), None


def claimed_continuation(body: str) -> Continuation:
    """What a body's continuation field claims, without checking its seal (none when the field is absent or any
    member of it is malformed): for showing an operator what a dead letter says, never for acting on."""
    try:
        fields = {key.lower(): value for key, value in _load_object(body).items()}
        return _continuation(fields.get(CONTINUATION_KEY.lower()))
    except MalformedMessage:
        return Continuation()


def _status(value: object) -> Status:
    if isinstance(value, str):
        for status in Status:
            if value.lower() == status.value.lower():
                return status
    raise MalformedMessage(f"'status' must be Executing or Stopping ({_describe(value)})")


def _continuation(value: object) -> Continuation:
    if value is None:
        return Continuation()
    if not isinstance(value, dict):
        raise MalformedMessage(f"'{CONTINUATION_KEY}' is not an object")
    attempt = value.get("attempt", 1)
    continuations = value.get("continuations", 0)
    not_before = value.get("notBefore", 0.0)
    origin = value.get("originMessageId", "")
    link = value.get("link", 0)
    if not (_is_int(attempt) and attempt >= 1 and _is_int(continuations) and continuations >= 0):
        raise MalformedMessage(f"'{CONTINUATION_KEY}' has a bad attempt or continuation count")
    if not (_is_int(link) and link >= 0):
        raise MalformedMessage(f"'{CONTINUATION_KEY}' has a bad link number")
    if not _is_finite_number(not_before) or not isinstance(origin, str):
        raise MalformedMessage(f"'{CONTINUATION_KEY}' has a bad notBefore or originMessageId")
    wait = value.get("wait")
    if wait is not None and not (_is_finite_number(wait) and wait >= 0):
        raise MalformedMessage(f"'{CONTINUATION_KEY}' has a bad wait")
    answer = _answer(value["answer"]) if value.get("answer") is not None else None
    return Continuation(
        attempt,
        continuations,
        value.get("state"),
        float(not_before),
        origin,
        link,
        None if wait is None else float(wait),
        answer,
    )


def _answer(value: object) -> Outcome:
    """A handed-on answer, checked against the same limits as a handler's (a body is untrusted input)."""
    if isinstance(value, dict) and value.get("kind") == "failure" and isinstance(value.get("reason"), str):
        return failure(value["reason"])
    if isinstance(value, dict) and value.get("kind") == "success" and isinstance(value.get("outputs"), list):
        pairs = value["outputs"]
        if all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair) for pair in pairs):
            converted = convert_outputs(dict(pairs))
            if isinstance(converted, Success) and len(converted.outputs) == len(pairs):
                return converted
    raise MalformedMessage(f"'{CONTINUATION_KEY}' has a bad answer")


def _is_finite_number(value: object) -> bool:
    # JSON allows integers too large for a float (OverflowError) and Python's parser accepts NaN and Infinity;
    # an infinite notBefore would re-queue the message forever.
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    """A short, safe description of a bad value: its type and a bounded preview, never a whole token."""
    if value is None:
        return "absent"
    if isinstance(value, str):
        # Masked before it is cut (masking keeps lengths): a token across the cut is masked too.
        preview = mask_token_like(value[: _STRING_PREVIEW + 10])[:_STRING_PREVIEW]
        preview += "..." if len(value) > _STRING_PREVIEW else ""
        return f"got a {len(value)}-character string {preview!r}"
    return f"got {type(value).__name__}"
