"""The ``http`` handler: POSTs the step to a web endpoint and answers with the endpoint's JSON reply.

Settings, arguments, outputs and stop behaviour are documented on :class:`HttpHandler`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import aiohttp
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from handlers._context import context_document, object_outputs, preview, run_key
from handlers._settings import HandlerSettings, decode_json, load_settings
from worker.handler import CallbackContext, Fail, OutputValue

URL_ARGUMENT = "http_url"
USER_AGENT = "sagemaker-callback-worker"
RETRIED_CLIENT_ERRORS = frozenset({408, 429})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_HTTP_OK = range(200, 300)
_HTTP_CLIENT_ERRORS = range(400, 500)


class HttpCallError(Exception):
    """The endpoint could not answer now (5xx, 408/429, timeout, connection error); the worker calls again."""


class HttpSettings(HandlerSettings):
    """Settings of the ``http`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_HTTP_")
    secret_fields = frozenset({"headers"})

    url: Annotated[str | None, Field(default=None, max_length=2048, description="The endpoint to POST to.")]
    timeout: Annotated[float, Field(default=30.0, gt=0, le=3600, description="Seconds for the whole exchange.")]
    headers: Annotated[
        dict[str, str], Field(default_factory=dict, description="Extra request headers (JSON object of strings).")
    ]
    send_token: Annotated[bool, Field(default=False, description="Include the callback token in the body.")]
    allow_url_argument: Annotated[
        bool, Field(default=False, description=f"Let the step argument '{URL_ARGUMENT}' replace the URL.")
    ]
    max_response: Annotated[
        int, Field(default=1_048_576, ge=1024, le=16_777_216, description="Bytes of response body accepted.")
    ]

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _decode_headers(cls, value: object) -> object:
        return decode_json(value)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of header {name!r} contains a line break")
        return value


class HttpHandler:
    """The ``http`` handler: POSTs the step to a web endpoint and answers with the endpoint's JSON reply.

    Settings (environment, prefix ``CALLBACK_WORKER_HTTP_``):

    - ``URL`` (unset by default): The endpoint (``http://`` or ``https://``).
    - ``TIMEOUT`` (default ``30``): Seconds for the whole exchange (0 < t ≤ 3,600).
    - ``HEADERS`` (default ``{}``): Extra request headers as a JSON object of strings, e.g. ``{"Authorization": "Bearer
      ..."}``; never shown in errors or logs.
    - ``SEND_TOKEN`` (default ``false``): Include the callback token in the body (``token``).
    - ``ALLOW_URL_ARGUMENT`` (default ``false``): Let the step argument ``http_url`` replace ``URL`` for its message.
    - ``MAX_RESPONSE`` (default ``1048576``): Bytes of response body accepted (1 KiB to 16 MiB).

    Unset ``URL``: each step routed here fails naming the variable.

    Request: ``POST`` with the context document as JSON — ``{"arguments", "pipelineName", "pipelineExecutionArn",
    "executionId", "attempt"}`` (plus ``token`` with ``SEND_TOKEN``); ``http_url`` (when allowed) is not passed on.
    Headers: ``Content-Type: application/json``, ``User-Agent: sagemaker-callback-worker``, and ``Idempotency-Key``: a
    SHA-256 hash of the token, the same on every delivery of one step, so the receiver can recognise a repeat.

    The token stays out of the request by default: the worker answers the step itself from the reply, so the receiver
    has no use for it. A receiver that wants to answer later, on its own, needs ``SEND_TOKEN`` — and then the step must
    be answered by that receiver, not by this handler (make it reply, then answer with the token itself).

    Reply:

    - 2xx with a JSON object: its members are the outputs (scalars as they are, lists and objects as compact JSON); 204
      or an empty body: no outputs; any other body: the step fails saying so.
    - 3xx: the step fails (redirects are not followed: configure the final URL).
    - 408 and 429: raised as errors, so the worker calls again with backoff (``CALLBACK_WORKER_MAX_ATTEMPTS``).
    - other 4xx: the step fails with the status, reason and the start of the body.
    - 5xx, timeouts, connection errors: raised as :class:`HttpCallError`, retried the same way.

    Redirects, timeouts and retries aside, the receiver sees each delivery of the step: make it idempotent on
    ``Idempotency-Key``.
    """

    def __init__(self) -> None:
        self.settings = load_settings(HttpSettings)
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        """Close the handler's HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def url(self, context: CallbackContext) -> str:
        """The endpoint for this step: its ``http_url`` argument when allowed, else the setting."""
        chosen = context.arguments.get(URL_ARGUMENT)
        if chosen is not None and self.settings.allow_url_argument:
            if not isinstance(chosen, str) or not _URL.match(chosen):
                raise Fail(f"the step argument {URL_ARGUMENT!r} must be an http:// or https:// URL")
            return chosen
        return str(self.settings.require("url"))

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (URL_ARGUMENT,) if self.settings.allow_url_argument else ()

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue]:
        url = self.url(context)
        body = context_document(context, include_token=self.settings.send_token, exclude=self._overrides())
        headers = {
            **self.settings.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": run_key(context.token),
        }
        session = self._get_session()
        try:
            async with session.post(url, data=json.dumps(body), headers=headers, allow_redirects=False) as response:
                content = await _read(response, self.settings.max_response)
                return _answer(url, response, content)
        except TimeoutError:
            raise HttpCallError(
                f"POST {url} got no answer within {self.settings.timeout:g} s ({HttpSettings.env_name('timeout')})"
            ) from None
        except aiohttp.ClientError as exc:
            raise HttpCallError(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self._session


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or ``None`` when it is longer than ``limit`` bytes."""
    content = await response.content.read(limit + 1)
    return content if len(content) <= limit else None


def _answer(url: str, response: aiohttp.ClientResponse, content: bytes | None) -> dict[str, OutputValue]:
    status = response.status
    where = f"POST {url} answered {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in RETRIED_CLIENT_ERRORS:
        raise HttpCallError(f"{where}: {preview(content or b'')}")
    if status in _HTTP_CLIENT_ERRORS:
        raise Fail(f"{where}: {preview(content or b'', 120)}")
    if status not in _HTTP_OK:
        raise Fail(f"{where}; redirects and other non-2xx answers are not followed")
    if content is None:
        raise Fail(f"{where} with a body longer than {HttpSettings.env_name('max_response')}")
    return object_outputs(content, f"the body of {where}")
