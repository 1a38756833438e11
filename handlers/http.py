"""The ``http`` handler: POSTs the step to a web endpoint and answers with the endpoint's JSON reply.

Settings, arguments, outputs and stop behaviour are documented on :class:`HttpHandler`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated

import aiohttp
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict
from yarl import URL

from callback_worker.config.settings import decode_json
from callback_worker.handlers._addresses import Address, is_public
from callback_worker.handlers._context import context_document, object_outputs, preview, run_key
from callback_worker.handlers._paths import AmbiguousPath, decoded_path
from callback_worker.handlers._pinning import PinnedResolver, approved
from callback_worker.handlers._settings import HandlerSettings, load_settings, split_commas
from callback_worker.worker.errors import WorkerError
from callback_worker.worker.handler import CallbackContext, Fail, OutputValue
from callback_worker.worker.logs import get_logger, mask_token_like
from callback_worker.worker.tracecontext import trace_headers

URL_ARGUMENT = "http_url"
USER_AGENT = "sagemaker-callback-worker"
RETRIED_CLIENT_ERRORS = frozenset({408, 429})
#: Characters of a 4xx body quoted in a failure reason (token-shaped runs masked).
BODY_SHOWN = 120
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
#: A URL in free text (an exception's message): its user-info and its query and fragment, dropped by :func:`scrub`.
_URL_IN_TEXT = re.compile(r"(?i)\b(https?://)(?:[^\s/?#]*@)?([^\s?#]*)(?:[?#][^\s'\"<>)\]]*)?")
_HTTP_OK = range(200, 300)
_HTTP_CLIENT_ERRORS = range(400, 500)

log = get_logger("handlers.http")

Origin = tuple[str, str, int | None]


class HttpCallError(WorkerError):
    """The endpoint could not answer now (5xx, 408/429, timeout, connection error): raised out of the handler, so
    the worker calls it again as it does any handler that raised."""


class HttpSettings(HandlerSettings):
    """Settings of the ``http`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_HTTP_")
    secret_fields = frozenset({"headers", "allowed_urls"})  # a prefix written with user-info is not echoed

    url: Annotated[str | None, Field(default=None, max_length=2048, description="The endpoint to POST to.")]
    timeout: Annotated[float, Field(default=30.0, gt=0, le=3600, description="Seconds for the whole exchange.")]
    headers: Annotated[
        dict[str, str], Field(default_factory=dict, description="Extra request headers (JSON object of strings).")
    ]
    send_token: Annotated[bool, Field(default=False, description="Include the callback token in the body.")]
    allow_url_argument: Annotated[
        bool, Field(default=False, description=f"Let the step argument '{URL_ARGUMENT}' replace the URL.")
    ]
    allowed_urls: Annotated[
        tuple[str, ...],
        Field(
            default=(),
            max_length=100,
            validate_default=True,
            description=f"URL prefixes the step argument '{URL_ARGUMENT}' must start with (comma-separated).",
        ),
    ]
    max_response: Annotated[
        int, Field(default=1_048_576, ge=1024, le=16_777_216, description="Bytes of response body accepted.")
    ]
    cookies: Annotated[
        bool, Field(default=False, description="Keep cookies a server sets, one jar for every step and origin.")
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

    @field_validator("allowed_urls", mode="before")
    @classmethod
    def _split_prefixes(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("allowed_urls")
    @classmethod
    def _valid_prefixes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("allow_url_argument") and not value:
            raise ValueError(f"required when {cls.env_name('allow_url_argument')} is true")
        for prefix in value:
            _check_prefix(prefix)
        return value


def _check_prefix(prefix: str) -> None:
    """A prefix is an ``http(s)://`` URL with a host and no user-info, query or fragment."""
    try:
        parsed = URL(prefix) if _URL.match(prefix) else None
    except ValueError:
        parsed = None
    if parsed is None or not parsed.raw_host:
        raise ValueError(f"{scrub(prefix)!r} is not an http:// or https:// URL")
    if parsed.user is not None or parsed.password is not None or parsed.query_string or parsed.fragment:
        raise ValueError(f"{shown_url(prefix)!r}: a prefix has no user-info, query or fragment")
    try:
        decoded_path(URL(prefix, encoded=True).raw_path)
    except AmbiguousPath as exc:
        raise ValueError(f"{shown_url(prefix)!r}: the path has {exc}") from None


class HttpHandler:
    """The ``http`` handler: POSTs the step to a web endpoint and answers with the endpoint's JSON reply.

    Settings (environment, prefix ``CALLBACK_WORKER_HTTP_``):

    - ``URL`` (unset by default): The endpoint (``http://`` or ``https://``).
    - ``TIMEOUT`` (default ``30``): Seconds for the whole exchange (0 < t ≤ 3,600).
    - ``HEADERS`` (default ``{}``): Extra request headers as a JSON object of strings, e.g. ``{"Authorization": "Bearer
      ..."}``; never shown in errors or logs, and sent only to the origin (scheme, host and port) of ``URL``.
    - ``SEND_TOKEN`` (default ``false``): Include the callback token in the body (``token``).
    - ``ALLOW_URL_ARGUMENT`` (default ``false``): Let the step argument ``http_url`` replace ``URL`` for its message;
      requires ``ALLOWED_URLS``.
    - ``ALLOWED_URLS`` (default empty; required with ``ALLOW_URL_ARGUMENT``): Comma-separated URL prefixes, e.g.
      ``https://hooks.example.com/ml/,http://10.0.0.5:8080/``. An ``http_url`` must have a prefix's scheme, host and
      port and a path that starts with the prefix's path (end it with ``/`` to mean a folder), compared once both are
      decoded; anything else fails the step naming this setting. A prefix has no user-info, query or fragment.
    - ``MAX_RESPONSE`` (default ``1048576``): Bytes of response body accepted (1 KiB to 16 MiB).
    - ``COOKIES`` (default ``false``): Keep the cookies servers set and send them back. Off, no cookie outlives its
      response; on, one jar serves every step of every pipeline (a session cookie one step's server sets goes with
      another step's request to that server), so turn it on only for an endpoint that needs a session.

    Unset ``URL``: each step routed here fails naming the variable. ``ALLOW_URL_ARGUMENT`` without ``ALLOWED_URLS``,
    like any bad value, stops start-up naming the variable.

    **A step's own URL** (``http_url``) is checked before anything is sent. A path that servers and proxies could read
    differently is refused: a ``.`` or ``..`` segment, ``;`` in a segment, an encoded ``.``, ``/``, ``\\``, ``;`` or
    ``%``, and the other forms :mod:`handlers._paths` lists. Besides matching a prefix, every address its host resolves
    to must be public — loopback, link-local, private and other non-public addresses are refused, and so are the IPv6
    forms that carry one (IPv4-mapped, IPv4-compatible, NAT64, 6to4; :mod:`handlers._addresses`) — unless the matching
    prefix names that address itself (``http://10.0.0.5:8080/``; a host name does not count). The request connects to
    the addresses so checked, never to a second look-up of the host (:mod:`handlers._pinning`). It gets ``HEADERS``
    only when it has ``URL``'s origin. URLs in failure reasons and logs never show user-info or query.

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
    - 3xx: the step fails. Redirects are never followed (configure the final URL), so no header goes to where a
      redirect points.
    - 408 and 429: raised as errors, so the worker calls again with backoff (``CALLBACK_WORKER_MAX_ATTEMPTS``).
    - other 4xx: the step fails with the status, reason and the start of the body (120 characters, anything shaped
      like a token masked).
    - 5xx, timeouts, connection errors: raised as :class:`HttpCallError`, retried the same way.

    Redirects, timeouts and retries aside, the receiver sees each delivery of the step: make it idempotent on
    ``Idempotency-Key``.
    """

    def __init__(self) -> None:
        self.settings = load_settings(HttpSettings)
        self._prefixes = tuple(
            (URL(prefix), decoded_path(URL(prefix).raw_path)) for prefix in self.settings.allowed_urls
        )
        self._secret_origin = origin(URL(self.settings.url)) if self.settings.url else None
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        """Close the handler's HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def endpoint(self, context: CallbackContext) -> tuple[URL, AbstractContextManager[None]]:
        """The endpoint for this step: its ``http_url`` argument when allowed (and admitted), else the setting; and
        the block to send in, which connects a step's URL to the addresses its check approved (no second look-up)."""
        chosen = context.arguments.get(URL_ARGUMENT)
        if chosen is None or not self.settings.allow_url_argument:
            return URL(str(self.settings.require("url"))), nullcontext()
        url = _parse_argument(chosen)
        prefix = self._prefix_of(url, _path_of(str(chosen), url))  # a str: _parse_argument checked it
        addresses = await _check_addresses(url, prefix)
        return url, approved(url.raw_host or "", addresses)

    def _prefix_of(self, url: URL, path: str) -> URL:
        """The allowed prefix ``url`` (whose decoded path is ``path``) is under, compared segment by decoded segment."""
        for prefix, prefix_path in self._prefixes:
            if origin(url) == origin(prefix) and path.startswith(prefix_path):
                return prefix
        raise _refused(url, f"does not start with any of {HttpSettings.env_name('allowed_urls')}")

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (URL_ARGUMENT,) if self.settings.allow_url_argument else ()

    def _headers(self, url: URL, context: CallbackContext) -> dict[str, str]:
        """The request's headers; the configured (secret) ones only for the configured URL's origin."""
        secret = self.settings.headers if origin(url) == self._secret_origin else {}
        if url.user is not None and any(name.lower() == "authorization" for name in secret):
            raise Fail(
                f"POST {shown_url(url)}: the URL's user-info and the Authorization header of "
                f"{HttpSettings.env_name('headers')} cannot both be sent; keep one"
            )
        return {
            **secret,
            **trace_headers(),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": run_key(context.token),
        }

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue]:
        url, pinned = await self.endpoint(context)
        body = context_document(context, include_token=self.settings.send_token, exclude=self._overrides())
        headers = self._headers(url, context)
        session = self._get_session()
        try:
            with pinned:
                async with session.post(url, data=json.dumps(body), headers=headers, allow_redirects=False) as res:
                    content = await _read(res, self.settings.max_response)
                    return _answer(shown_url(url), res, content)
        except TimeoutError:
            raise HttpCallError(
                f"POST {shown_url(url)} got no answer within {self.settings.timeout:g} s "
                f"({HttpSettings.env_name('timeout')})"
            ) from None
        except aiohttp.ClientError as exc:  # its text may hold the whole URL: the cause is left out of the chain
            raise HttpCallError(f"POST {shown_url(url)} failed: {type(exc).__name__}: {scrub(str(exc))}") from None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            jar = aiohttp.CookieJar() if self.settings.cookies else aiohttp.DummyCookieJar()
            connector = aiohttp.TCPConnector(resolver=PinnedResolver(), use_dns_cache=False)  # see _pinning
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout), cookie_jar=jar
            )
        return self._session


def origin(url: URL) -> Origin:
    """Scheme, host and port (the default one when none is written)."""
    return (url.scheme.lower(), (url.raw_host or "").lower(), url.port)


def shown_url(url: URL | str) -> str:
    """``url`` as failure reasons and logs show it: without user-info, query and fragment."""
    return scrub(str(url))


def scrub(text: str) -> str:
    """``text`` with the user-info, query and fragment of every ``http(s)://`` URL in it removed."""
    return _URL_IN_TEXT.sub(r"\1\2", text)


def _parse_argument(value: object) -> URL:
    if isinstance(value, str) and _URL.match(value):
        try:
            url = URL(value)
        except ValueError:
            pass
        else:
            if url.raw_host:
                return url
    raise Fail(f"the step argument {URL_ARGUMENT!r} must be an http:// or https:// URL")


def _path_of(written: str, url: URL) -> str:
    """The decoded path of a step's URL, checked as written (before dot segments are resolved) and as sent."""
    try:
        decoded_path(URL(written, encoded=True).raw_path)
        return decoded_path(url.raw_path)
    except AmbiguousPath as exc:
        raise _refused(written, f"has a path servers and proxies may read differently: {exc}") from None


def _refused(url: URL | str, why: str) -> Fail:
    """The :class:`Fail` for a step URL that is not admitted, logged (without user-info and query) as it goes."""
    shown = shown_url(url)
    log.warning("refused the step's URL", url=shown, why=why)
    return Fail(f"the step argument {URL_ARGUMENT!r} ({shown}) {why}")


async def _check_addresses(url: URL, prefix: URL) -> list[Address]:
    """The addresses ``url``'s host stands for, every one public or the host the prefix names (else refused)."""
    named = _address(prefix.raw_host or "")
    addresses = await _resolve(url)
    if not addresses:
        raise HttpCallError(f"POST {shown_url(url)} failed: {url.raw_host!r} resolves to no address")
    for address in addresses:
        if address != named and not is_public(address):
            raise _refused(
                url,
                f"leads to {address}, which is not a public address; "
                f"name the address in {HttpSettings.env_name('allowed_urls')} to allow it",
            )
    return addresses


async def _resolve(url: URL) -> list[Address]:
    """The addresses of ``url``'s host: the host itself when it is one, else what the event loop's resolver says."""
    host = url.raw_host or ""
    literal = _address(host)
    if literal is not None:
        return [literal]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise HttpCallError(f"POST {shown_url(url)} failed: cannot resolve {host!r}: {exc}") from None
    return [address for *_, sockaddr in found if (address := _address(str(sockaddr[0]))) is not None]


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or ``None`` when it is longer than ``limit`` bytes."""
    content = await response.content.read(limit + 1)
    return content if len(content) <= limit else None


def _answer(shown: str, response: aiohttp.ClientResponse, content: bytes | None) -> dict[str, OutputValue]:
    status = response.status
    where = f"POST {shown} answered {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in RETRIED_CLIENT_ERRORS:
        raise HttpCallError(f"{where}: {_quoted(content)}")
    if status in _HTTP_CLIENT_ERRORS:
        raise Fail(f"{where}: {_quoted(content, BODY_SHOWN)}")
    if status not in _HTTP_OK:
        raise Fail(f"{where}; redirects and other non-2xx answers are not followed")
    if content is None:
        raise Fail(f"{where} with a body longer than {HttpSettings.env_name('max_response')}")
    what = f"the body of {where}"
    try:
        return object_outputs(content, what)
    except Fail as exc:  # it quotes the body: mask what could be a token, after the part this handler wrote
        raise Fail(what + mask_token_like(exc.reason.removeprefix(what))) from None


def _quoted(content: bytes | None, limit: int = 80) -> str:
    """The start of a body for a reason or an error, anything shaped like a token masked."""
    return mask_token_like(preview(content or b"", limit))
