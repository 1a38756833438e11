"""Trust boundaries of the ``http`` handler, second review: cookies, ambiguous paths, addresses carrying an IPv4 one.

Before:

- one cookie jar served every step: a session cookie the server set for pipeline A's step went with pipeline B's
  request (and to any other allowed origin the cookie's domain matched);
- the prefix check of ``http_url`` compared path strings: ``/hooks/..;/admin``, ``/hooks/..%2F..`` and
  ``/hooks/..%5Cadmin`` start with ``/hooks/`` and carried the secret headers to wherever a servlet container or a
  decoding proxy resolves them;
- the address check relied on :mod:`ipaddress`'s ``is_global``, which on some Pythons calls NAT64 (``64:ff9b::/96``),
  6to4 (``2002::/16``), IPv4-compatible (``::a.b.c.d``) and IPv4-translated forms of the metadata service's address
  public.

Now no cookie outlives its response unless ``CALLBACK_WORKER_HTTP_COOKIES`` is on; a path is compared on its decoded
segments and refused when servers and proxies could read it differently; addresses are judged from a fixed table,
an IPv6 form carrying an IPv4 address by that address. Real aiohttp servers on 127.0.0.1 answer the requests.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from ipaddress import ip_address
from typing import Any

import pytest
from aiohttp import web

from callback_worker.handlers.http import HttpHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import Fail, JSONValue
from tests.handler_support import HANDLER_ARGUMENT, TOKEN, callback_context, clear_settings, local_server
from tests.security.test_http_urls import HEADERS, SECRET, fake_resolver, make_handler

__all__ = ["make_handler"]  # the fixture, shared with test_http_urls.py

PREFIX = "CALLBACK_WORKER_HTTP_"


class Receiver:
    """One endpoint: records each request's raw path and headers; sets a session cookie on every answer."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.raw_path, dict(request.headers)))
        response = web.json_response({"done": True})
        response.set_cookie("session", f"of-step-{len(self.requests)}")
        return response


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recorder = Receiver()
    async with local_server("/{tail:.*}", recorder.handle) as url:
        yield recorder, url


async def call(handler: HttpHandler, url: str | None = None) -> Any:
    arguments: dict[str, JSONValue] = {} if url is None else {"http_url": url}
    return await handler(callback_context("http", TOKEN, arguments))


# -- cookies ----------------------------------------------------------------------------------------------------------


async def test_a_cookie_one_step_received_is_not_sent_with_the_next(
    receiver: tuple[Receiver, str], make_handler: Any
) -> None:
    recorder, url = receiver
    named = url.replace("127.0.0.1", "localhost")  # aiohttp's jar keeps no cookie an IP address sets
    handler = make_handler(f"{named}/hook", f"{named}/")
    assert await call(handler) == {"done": True}
    assert await call(handler) == {"done": True}
    [(_, first), (_, second)] = recorder.requests
    assert "Cookie" not in first
    assert "Cookie" not in second


async def test_cookies_are_kept_only_when_opted_in(receiver: tuple[Receiver, str], make_handler: Any) -> None:
    recorder, url = receiver
    named = url.replace("127.0.0.1", "localhost")
    handler = make_handler(f"{named}/hook", f"{named}/", cookies="true")
    await call(handler)
    await call(handler)
    assert recorder.requests[1][1]["Cookie"] == "session=of-step-1"


def test_the_cookie_setting_is_a_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}COOKIES", "sometimes")
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}COOKIES='sometimes'"):
        HttpHandler()


# -- paths ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/hooks/..;/admin", "';' in the segment '..;'"),  # a servlet container strips ';...': '..'
        ("/hooks/x;jsessionid=1", "';' in the segment 'x;jsessionid=1'"),
        ("/hooks/..%2F..%2Fadmin", "an encoded '/' in the segment '..%2F..%2Fadmin'"),
        ("/hooks/..%5Cadmin", "an encoded '\\' in the segment '..%5Cadmin'"),
        ("/hooks/%2e%2e/admin", "an encoded '.' in the segment '%2e%2e'"),
        ("/hooks/%252e%252e/admin", "an encoded '%' in the segment '%252e%252e'"),  # decoded twice: '..'
        ("/hooks/%3B/admin", "an encoded ';' in the segment '%3B'"),
        ("/hooks/../admin", "a '..' segment"),
        ("/hooks/../hooks/x", "a '..' segment"),  # back inside, but a proxy may not resolve it the same way
        ("/hooks/./x", "a '.' segment"),
        ("/hooks/..%20/admin", "a segment of only dots and spaces '..%20'"),  # Windows and IIS trim it to '..'
        ("/hooks/.../admin", "a segment of only dots and spaces '...'"),
        ("/hooks/.%20./admin", "a segment of only dots and spaces '.%20.'"),
        ("/hooks/%20/admin", "a segment of only dots and spaces '%20'"),
        ("/hooks/%C0%AE%C0%AE/admin", "percent-encoded bytes that are not UTF-8 in the segment '%C0%AE%C0%AE'"),
        (
            "/hooks/%EF%BC%8E%EF%BC%8E/admin",  # full-width '..'
            "characters that Unicode normalisation changes in the segment '%EF%BC%8E%EF%BC%8E'",
        ),
        ("/hooks/a%00.json", r"'\x00' in the segment 'a%00.json'"),
        ("/hooks/a\\..\\admin", r"'\\' in the segment 'a\\..\\admin'"),  # a literal backslash, shown escaped
    ],
)
async def test_a_path_servers_may_read_differently_is_refused_before_anything_is_sent(
    receiver: tuple[Receiver, str], make_handler: Any, path: str, why: str
) -> None:
    recorder, url = receiver
    handler = make_handler(f"{url}/hooks/x", f"{url}/hooks/")
    with pytest.raises(Fail, match="has a path servers and proxies may read differently: ") as caught:
        await call(handler, url + path)
    assert caught.value.reason.endswith(why)
    assert "'http_url'" in caught.value.reason
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("path", "received"),
    [
        ("/hooks/x", "/hooks/x"),
        ("/hooks/sub/y?ref=1", "/hooks/sub/y"),
        ("/hooks/caf%C3%A9", "/hooks/caf%C3%A9"),
        ("/hooks/caf\u00e9", "/hooks/caf%C3%A9"),
        ("/hooks/a%20b", "/hooks/a%20b"),
        ("/hooks/v1.2/..x", "/hooks/v1.2/..x"),  # dots, but not only dots and spaces
    ],
)
async def test_a_plain_path_under_the_prefix_is_sent_with_the_secret_headers(
    receiver: tuple[Receiver, str], make_handler: Any, path: str, received: str
) -> None:
    recorder, url = receiver
    handler = make_handler(f"{url}/hooks/x", f"{url}/hooks/")
    assert await call(handler, url + path) == {"done": True}
    [(raw_path, headers)] = recorder.requests
    assert raw_path.split("?")[0] == received
    assert headers["Authorization"] == SECRET


async def test_a_decoded_path_outside_the_prefix_is_refused(receiver: tuple[Receiver, str], make_handler: Any) -> None:
    recorder, url = receiver
    handler = make_handler(f"{url}/hooks/x", f"{url}/h%C3%A9/")  # the prefix is compared decoded, too
    assert await call(handler, f"{url}/h\u00e9/x") == {"done": True}
    with pytest.raises(Fail, match="does not start with any of CALLBACK_WORKER_HTTP_ALLOWED_URLS"):
        await call(handler, f"{url}/h%C3%A9x/y")
    assert [path for path, _ in recorder.requests] == ["/h%C3%A9/x"]


@pytest.mark.parametrize(
    "prefix", ["https://h.example/hooks/..;/", "https://h.example/a/../hooks/", "https://h.example/a/..%20/hooks/"]
)
def test_an_ambiguous_prefix_stops_start_up(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv(f"{PREFIX}ALLOW_URL_ARGUMENT", "true")
    monkeypatch.setenv(f"{PREFIX}HEADERS", HEADERS)
    monkeypatch.setenv(f"{PREFIX}ALLOWED_URLS", prefix)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}ALLOWED_URLS") as caught:
        HttpHandler()
    assert "the path has " in str(caught.value)


# -- addresses --------------------------------------------------------------------------------------------------------

#: IPv6 forms of the metadata service's address (169.254.169.254) and of private and loopback IPv4 addresses.
CARRYING_NON_PUBLIC = [
    "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
    "64:ff9b::10.0.0.1",
    "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix
    "2002:a9fe:a9fe::1",  # 6to4
    "2002:7f00:1::",
    "::a9fe:a9fe",  # IPv4-compatible
    "::10.0.0.1",
    "::ffff:a9fe:a9fe",  # IPv4-mapped
    "::ffff:0:a9fe:a9fe",  # IPv4-translated
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]


@pytest.mark.parametrize("address", CARRYING_NON_PUBLIC)
async def test_an_ipv6_form_of_a_non_public_ipv4_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_handler: Any, address: str
) -> None:
    handler = make_handler("https://hooks.example.invalid:9/a", "https://hooks.example.invalid:9/", timeout="1")
    fake_resolver(monkeypatch, address)
    with pytest.raises(Fail, match=f"leads to {ip_address(address)}, which is not a public address"):
        await call(handler, "https://hooks.example.invalid:9/b")


# -- DNS rebinding ----------------------------------------------------------------------------------------------------

#: Stands for a public address: a loopback address the test lets the address check pass (all of 127/8 is loopback).
STAND_IN_PUBLIC = ip_address("127.0.0.2")


@pytest.fixture
async def rebinding(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Receiver, Receiver, list[str], int]]:
    """An internal receiver on 127.0.0.1 and a "public" one on 127.0.0.2, on one port, and a DNS whose owner answers
    the first look-up with the public address and every later one with the internal address."""
    monkeypatch.setattr("callback_worker.handlers.http.is_public", lambda address: address == STAND_IN_PUBLIC)
    internal, public = Receiver(), Receiver()
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int | None, **_: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        address = str(STAND_IN_PUBLIC) if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    runners = []
    port = 0
    for receiver, host in ((internal, "127.0.0.1"), (public, str(STAND_IN_PUBLIC))):
        app = web.Application()
        app.router.add_post("/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        port = runner.addresses[0][1]
        runners.append(runner)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    try:
        yield internal, public, asked, port
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_the_request_goes_to_the_address_the_check_approved_not_to_a_second_look_up(
    rebinding: tuple[Receiver, Receiver, list[str], int], make_handler: Any
) -> None:
    internal, public, asked, port = rebinding
    hooks = f"http://hooks.rebind.test:{port}"
    handler = make_handler("https://configured.example.invalid/hook", f"{hooks}/")
    assert await call(handler, f"{hooks}/a") == {"done": True}
    assert asked == ["hooks.rebind.test"], "the host is looked up once, by the check"
    [(path, headers)] = public.requests
    assert (path, headers["Host"]) == ("/a", f"hooks.rebind.test:{port}")
    with pytest.raises(Fail, match=r"leads to 127\.0\.0\.1, which is not a public address"):
        await call(handler, f"{hooks}/b")  # the next step's check sees the new answer
    assert internal.requests == []
