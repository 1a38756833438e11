"""What the built-in handlers hand to the outside world, and how they read answers back.

One *context document* shape is shared by every handler that sends the step onwards (the ``command`` handler's stdin,
the ``http`` handler's body, the Step Functions input, the Lambda payload)::

    {"arguments": {...}, "pipelineName": "...", "pipelineExecutionArn": "...", "executionId": "...",
     "attempt": 1, "token": "..."}

``arguments`` are the step's arguments without the routing argument (``CALLBACK_WORKER_HANDLER_ARGUMENT``) and without
the handler's own override arguments. ``attempt`` is left out where the document must be the same on every call
(Step Functions compares the input of a repeated start). ``token`` is present only when a handler's setting opts in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, OutputValue
from callback_worker.worker.signing import environment_keyring

ROUTING_ARGUMENT_ENV = "CALLBACK_WORKER_HANDLER_ARGUMENT"
#: Prefix of the environment variables that carry step arguments to a process.
ARGUMENT_ENV_PREFIX = "CALLBACK_ARG_"
_NOT_ENV_SAFE = re.compile(r"[^A-Z0-9_]")


def routing_argument() -> str:
    """The step argument that names the handler; handlers pass every other argument on."""
    return os.environ.get(ROUTING_ARGUMENT_ENV) or "handler"


def step_arguments(context: CallbackContext, exclude: Collection[str] = ()) -> dict[str, JSONValue]:
    """The step's arguments without the routing argument and the ``exclude``d ones, in their order."""
    skipped = {routing_argument(), *exclude}
    return {name: value for name, value in context.arguments.items() if name not in skipped}


def context_document(
    context: CallbackContext, *, include_token: bool, include_attempt: bool = True, exclude: Collection[str] = ()
) -> dict[str, JSONValue]:
    """The context as the JSON object handed to commands, webhooks, state machines and functions."""
    document: dict[str, JSONValue] = {
        "arguments": step_arguments(context, exclude),
        "pipelineName": context.pipeline_name,
        "pipelineExecutionArn": context.pipeline_execution_arn,
        "executionId": context.execution_id,
    }
    if include_attempt:
        document["attempt"] = context.attempt
    if include_token:
        document["token"] = context.token
    return document


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def argument_text(value: JSONValue) -> str:
    """An argument as text for an environment variable or a job argument: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def argument_env_name(name: str) -> str:
    """``CALLBACK_ARG_`` + the argument's name upper-cased, every character but ``A-Z0-9_`` replaced by ``_``."""
    return ARGUMENT_ENV_PREFIX + _NOT_ENV_SAFE.sub("_", name.upper())


def argument_environment(arguments: Mapping[str, JSONValue]) -> dict[str, str]:
    """One environment variable per argument; two arguments that map to one name are a :class:`Fail`."""
    environment: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, value in arguments.items():
        variable = argument_env_name(name)
        if variable in origin:
            raise Fail(f"arguments {origin[variable]!r} and {name!r} both become the variable {variable}; rename one")
        origin[variable] = name
        environment[variable] = argument_text(value)
    return environment


def to_outputs(document: Mapping[str, Any]) -> dict[str, OutputValue]:
    """A JSON object as step outputs: scalars kept (the worker converts them), lists/objects/null as compact JSON."""
    outputs: dict[str, OutputValue] = {}
    for name, value in document.items():
        if isinstance(value, str | int | float | bool):
            outputs[str(name)] = value
        else:
            outputs[str(name)] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return outputs


def object_outputs(text: str | bytes, what: str) -> dict[str, OutputValue]:
    """Outputs from JSON text that must hold an object; empty text or ``null`` means no outputs.

    Anything else — text that is not JSON, or JSON that is not an object — is a :class:`Fail` naming ``what``.
    """
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        raise Fail(f"{what} is not JSON: {preview(text)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise Fail(f"{what} is a JSON {json_kind(document)}, not an object: {preview(text)}")
    return to_outputs(document)


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's type."""
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return kinds.get(type(value), "null")


def preview(text: str | bytes, limit: int = 80) -> str:
    """The start of ``text``, one line, for a failure reason."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def run_key(token: str, length: int = 32) -> str:
    """A stable, non-reversible key for one callback step: hex of HMAC-SHA256 over the token, under a key derived
    from the replicas' signing key (``CALLBACK_WORKER_SIGNING_KEY_FILE`` or ``CALLBACK_WORKER_SIGNING_KEY``); with
    no signing key, hex of a plain SHA-256 over the token.

    AWS jobs are named or marked with it, so a redelivered message — or a stop hook that has no state — finds the job
    this step started, and the token itself never shows up in job names, arguments or logs. Keyed, a published run
    key cannot be searched for its token offline; unkeyed, a token space of about 59.5 bits can be, by someone who
    sees the key while the step waits. A new signing key gives every token a new run key (``SECURITY.md``).
    """
    keyring = environment_keyring()
    if keyring is None:
        return hashlib.sha256(f"sagemaker-callback-worker:{token}".encode()).hexdigest()[:length]
    return hmac.new(keyring.derive("run key"), token.encode(), hashlib.sha256).hexdigest()[:length]
