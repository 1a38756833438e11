"""Finding 4 (medium): the ``http`` handler's step URL (``http_url``) and what reaches reasons and logs.

Before: with ``CALLBACK_WORKER_HTTP_ALLOW_URL_ARGUMENT`` on, a step's ``http_url`` could name any host — another
origin, a loopback, link-local or private address (the instance metadata service) — and the configured secret
``CALLBACK_WORKER_HTTP_HEADERS`` went with it; failure reasons and errors showed the URL with its user-info and query,
and quoted a 4xx body with whatever token it echoed. Now the URL must start with one of
``CALLBACK_WORKER_HTTP_ALLOWED_URLS`` (required with the argument: start-up stops without it), non-public addresses
need a prefix naming them, secret headers go only to the configured URL's origin, redirects are not followed, URLs are
shown without user-info and query, and a quoted body is capped and token-masked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from callback_worker.handlers.http import HttpCallError, HttpHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import Fail, JSONValue
from tests.handler_support import (
    HANDLER_ARGUMENT,
    TOKEN,
    callback_context,
    clear_settings,
    handler_builder,
    local_server,
)

PREFIX = "CALLBACK_WORKER_HTTP_"
SECRET = "Bearer hdr-s3cret"
HEADERS = f'{{"Authorization": "{SECRET}", "X-Team": "ml"}}'
PASSWORD = "pa55word-in-url"
QUERY_SECRET = "sig-in-query-x"
#: Characters of a 4xx body a failure reason may quote.
BODY_SHOWN = 120


class Receiver:
    """One web endpoint: records each request's path and headers; ``/redirect`` points at ``elsewhere``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.elsewhere = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        if request.path == "/redirect":
            return web.Response(status=307, headers={"Location": f"{self.elsewhere}/ok"})
        if request.path == "/echo":
            return web.Response(status=400, text=f"invalid request for token {TOKEN}: " + "x" * 1000)
        if request.path == "/missing":
            return web.Response(status=404, text="no such route")
        if request.path == "/echo-ok":
            return web.Response(text=f"thanks {TOKEN}")
        return web.json_response({"done": True})


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Receiver, str, Receiver, str]]:
    """Two endpoints on 127.0.0.1: the configured one (``a``) and another origin (``b``)."""
    a, b = Receiver(), Receiver()
    async with local_server("/{tail:.*}", a.handle) as a_url, local_server("/{tail:.*}", b.handle) as b_url:
        a.elsewhere = b_url
        yield a, a_url, b, b_url


@pytest.fixture
async def make_handler(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """``make(url, allowed, **settings)``: a handler for ``url`` with secret headers and the URL argument allowed."""
    async with handler_builder(monkeypatch, PREFIX, HttpHandler) as build:

        def make(url: str, allowed: str, **settings: str) -> HttpHandler:
            return build(url=url, headers=HEADERS, allow_url_argument="true", allowed_urls=allowed, **settings)

        yield make


async def call(handler: HttpHandler, url: str | None = None) -> Any:
    arguments: dict[str, JSONValue] = {"x": 1} if url is None else {"http_url": url, "x": 1}
    return await handler(callback_context("http", TOKEN, arguments))


def fake_resolver(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    """The running loop's ``getaddrinfo`` answers ``addresses`` for any host."""

    async def getaddrinfo(host: str, port: int | None, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 443)) for address in addresses]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


async def test_secret_headers_stay_with_the_configured_origin(servers: Any, make_handler: Any) -> None:
    a, a_url, b, b_url = servers
    handler = make_handler(f"{a_url}/hook", f"{a_url}/,{b_url}/")
    assert await call(handler, f"{b_url}/other") == {"done": True}
    assert await call(handler) == {"done": True}
    assert await call(handler, f"{a_url}/same-origin") == {"done": True}
    [(_, to_b)] = b.requests
    assert "Authorization" not in to_b
    assert "X-Team" not in to_b
    assert SECRET not in str(to_b)
    assert [(path, headers["Authorization"]) for path, headers in a.requests] == [
        ("/hook", SECRET),
        ("/same-origin", SECRET),
    ]


async def test_a_redirect_to_another_origin_is_not_followed(servers: Any, make_handler: Any) -> None:
    a, a_url, b, _ = servers
    handler = make_handler(f"{a_url}/redirect", f"{a_url}/")
    with pytest.raises(Fail, match="answered 307 Temporary Redirect; redirects and other non-2xx"):
        await call(handler)
    assert [path for path, _ in a.requests] == ["/redirect"]
    assert b.requests == []


@pytest.mark.parametrize(
    "step_url",
    [
        "{b}/hooks/x",  # another port: another origin
        "{a}/other/x",  # the prefix's origin, not its path
        "http://localhost:{a_port}/hooks/x",  # the same server under another name
        "{a}@{b_host}/hooks/x",  # the prefix's origin as user-info
    ],
)
async def test_a_url_outside_the_prefixes_fails_naming_the_setting(
    servers: Any, make_handler: Any, step_url: str
) -> None:
    a, a_url, b, b_url = servers
    handler = make_handler(f"{a_url}/hooks/x", f"{a_url}/hooks/")
    url = step_url.format(a=a_url, b=b_url, a_port=a_url.rsplit(":", 1)[1], b_host=b_url.removeprefix("http://"))
    with pytest.raises(Fail, match=r"does not start with any of CALLBACK_WORKER_HTTP_ALLOWED_URLS") as caught:
        await call(handler, url)
    assert "'http_url'" in caught.value.reason
    assert a.requests == b.requests == []


async def test_a_host_name_that_resolves_to_loopback_is_refused(servers: Any, make_handler: Any) -> None:
    a, a_url, _, _ = servers
    port = a_url.rsplit(":", 1)[1]
    handler = make_handler(f"{a_url}/hook", f"http://localhost:{port}/")
    with pytest.raises(Fail, match=r"leads to (127\.0\.0\.1|::1), which is not a public address"):
        await call(handler, f"http://localhost:{port}/hook")
    assert a.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:169.254.169.254",
    ],
)
async def test_every_non_public_address_of_a_host_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_handler: Any, address: str
) -> None:
    handler = make_handler("https://hooks.example.invalid:9/a", "https://hooks.example.invalid:9/", timeout="1")
    fake_resolver(monkeypatch, "93.184.216.34", address)
    shown = re.escape(str(ipaddress.ip_address(address)))  # as Python writes it: ::ffff:a9fe:a9fe
    with pytest.raises(Fail, match=f"leads to {shown}, which is not a public address; name the address in"):
        await call(handler, "https://hooks.example.invalid:9/b")


async def test_a_prefix_naming_a_private_address_allows_it(servers: Any, make_handler: Any) -> None:
    _, a_url, b, b_url = servers
    handler = make_handler(f"{a_url}/hook", f"{b_url}/")
    assert await call(handler, f"{b_url}/named") == {"done": True}
    assert [path for path, _ in b.requests] == ["/named"]


async def test_user_info_and_a_secret_authorization_header_fail_instead_of_crashing(
    servers: Any, make_handler: Any
) -> None:
    a, a_url, _, _ = servers
    handler = make_handler(f"{a_url}/hook", f"{a_url}/")
    with pytest.raises(Fail, match=r"user-info and the Authorization header of CALLBACK_WORKER_HTTP_HEADERS") as caught:
        await call(handler, a_url.replace("http://", f"http://user:{PASSWORD}@") + "/hook")
    assert caught.value.reason.startswith(f"POST {a_url}/hook: ")
    assert a.requests == []


def secret_free(*texts: str) -> bool:
    return not any(secret in text for text in texts for secret in (PASSWORD, QUERY_SECRET, "user:"))


async def test_credentials_and_query_never_reach_a_reason_or_a_log(servers: Any, make_handler: Any) -> None:
    _, a_url, b, b_url = servers
    handler = make_handler(f"{b_url}/hook", f"{a_url}/,http://127.0.0.1:9/")
    with_secrets = f"http://user:{PASSWORD}@{{host}}/missing?sig={QUERY_SECRET}#frag"
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(Fail) as refused:
            await call(handler, with_secrets.format(host=b_url.removeprefix("http://")))
        with pytest.raises(Fail) as answered:
            await call(handler, with_secrets.format(host=a_url.removeprefix("http://")))
        with pytest.raises(HttpCallError) as unreachable:
            await call(handler, with_secrets.format(host="127.0.0.1:9"))
    assert b.requests == []
    assert f"'http_url' ({b_url}/missing) does not start with any of" in refused.value.reason
    assert answered.value.reason == f"POST {a_url}/missing answered 404 Not Found: 'no such route'"
    shown_error = "".join(traceback.format_exception(unreachable.value))  # what the worker's log line carries
    assert "POST http://127.0.0.1:9/missing failed: ClientConnectorError" in shown_error
    assert [entry["url"] for entry in logs if entry["event"] == "refused the step's URL"] == [f"{b_url}/missing"]
    assert secret_free(refused.value.reason, answered.value.reason, shown_error, repr(logs))


async def test_a_quoted_4xx_body_is_capped_and_token_masked(servers: Any, make_handler: Any) -> None:
    _, a_url, _, _ = servers
    with pytest.raises(Fail) as caught:
        await call(make_handler(f"{a_url}/echo", f"{a_url}/"))
    reason = caught.value.reason
    assert reason.startswith(f"POST {a_url}/echo answered 400 Bad Request: 'invalid request for token 26v*******: xxx")
    assert TOKEN not in reason
    assert len(reason.split(": ", 1)[1]) <= BODY_SHOWN + 2  # the quotes of the preview
    with pytest.raises(Fail) as not_json:
        await call(make_handler(f"{a_url}/echo-ok", f"{a_url}/"))
    assert "is not JSON: 'thanks 26v*******'" in not_json.value.reason


async def test_allowing_the_url_argument_without_prefixes_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}ALLOW_URL_ARGUMENT", "true")
    monkeypatch.setenv(f"{PREFIX}HEADERS", HEADERS)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}ALLOWED_URLS") as caught:
        HttpHandler()
    assert f"required when {PREFIX}ALLOW_URL_ARGUMENT is true" in str(caught.value)


@pytest.mark.parametrize(
    ("prefixes", "message"),
    [
        ("https://ok.example/,ftp://files.example/", "'ftp://files.example/' is not an http:// or https:// URL"),
        ("hooks.example.com/", "is not an http:// or https:// URL"),
        (f"https://user:{PASSWORD}@hooks.example/", "a prefix has no user-info, query or fragment"),
        (f"https://hooks.example/?sig={QUERY_SECRET}", "a prefix has no user-info, query or fragment"),
    ],
)
def test_a_bad_prefix_stops_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, prefixes: str, message: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}ALLOW_URL_ARGUMENT", "true")
    monkeypatch.setenv(f"{PREFIX}ALLOWED_URLS", prefixes)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}ALLOWED_URLS") as caught:
        HttpHandler()
    assert message in str(caught.value)
    assert secret_free(str(caught.value))
