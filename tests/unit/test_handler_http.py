"""handlers/http.py against a real aiohttp server on 127.0.0.1: request shape, every reply class, settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web

from callback_worker.handlers._context import run_key
from callback_worker.handlers.http import HttpCallError, HttpHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue
from tests.handler_support import (
    HANDLER_ARGUMENT,
    TOKEN,
    callback_context,
    clear_settings,
    handler_builder,
    local_server,
    registered_handlers,
)

PREFIX = "CALLBACK_WORKER_HTTP_"


def context(arguments: Mapping[str, JSONValue] | None = None) -> CallbackContext:
    return callback_context("http", TOKEN, arguments)


class Receiver:
    """The test's web endpoint: records requests, answers by path."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, dict(request.headers), body))
        answers: dict[str, web.StreamResponse] = {
            "/ok": web.json_response({"model": "s3://m", "epochs": 3, "ok": True, "meta": {"a": [1]}}),
            "/list": web.json_response([1, 2]),
            "/text": web.Response(text="thanks!"),
            "/empty": web.Response(status=204),
            "/huge": web.Response(text=json.dumps({"x": "y" * 5000})),
            "/bad": web.Response(status=400, text='{"message": "inputData is required"}'),
            "/missing": web.Response(status=404, reason="Not Found", text="no such route"),
            "/busy": web.Response(status=429, text="slow down"),
            "/boom": web.Response(status=503, text="maintenance"),
            "/redirect": web.Response(status=302, headers={"Location": "/ok"}),
        }
        if request.path == "/slow":
            await asyncio.sleep(5)
        return answers.get(request.path, web.json_response({}))


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recorder = Receiver()
    async with local_server("/{tail:.*}", recorder.handle) as url:
        yield recorder, url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


@pytest.fixture
async def make_handler(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    async with handler_builder(monkeypatch, PREFIX, HttpHandler) as build:

        def make(url: str | None = None, **settings: str) -> HttpHandler:
            if url is not None:
                monkeypatch.setenv(f"{PREFIX}URL", url)
            return build(**settings)

        yield make


async def test_posts_the_context_and_answers_with_the_json_object(receiver: Any, make_handler: Any) -> None:
    recorder, base = receiver
    handler = make_handler(f"{base}/ok", headers='{"Authorization": "Bearer s3cret", "X-Team": "ml"}')
    outputs = await handler(context({"handler": "http", "n": 5, "data": "s3://b/k"}))
    assert outputs == {"model": "s3://m", "epochs": 3, "ok": True, "meta": '{"a":[1]}'}
    path, headers, body = recorder.requests[0]
    assert path == "/ok"
    assert body == {
        "arguments": {"n": 5, "data": "s3://b/k"},
        "pipelineName": "p",
        "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        "executionId": "e1",
        "attempt": 1,
    }
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Team"] == "ml"
    assert headers["Idempotency-Key"] == run_key(TOKEN)
    assert TOKEN not in json.dumps([headers, body])


async def test_one_session_serves_every_call_and_redeliveries_repeat_the_key(receiver: Any, make_handler: Any) -> None:
    recorder, base = receiver
    handler = make_handler(f"{base}/ok")
    await handler(context())
    await handler(context())
    keys = {headers["Idempotency-Key"] for _, headers, _ in recorder.requests}
    assert keys == {run_key(TOKEN)}


async def test_the_token_is_sent_only_when_opted_in(receiver: Any, make_handler: Any) -> None:
    recorder, base = receiver
    await make_handler(f"{base}/ok", send_token="true")(context())
    assert recorder.requests[0][2]["token"] == TOKEN


async def test_no_content_means_no_outputs(receiver: Any, make_handler: Any) -> None:
    _, base = receiver
    assert await make_handler(f"{base}/empty")(context()) == {}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/list", r"answered 200 OK is a JSON list, not an object: '\[1, 2\]'"),
        ("/text", "answered 200 OK is not JSON: 'thanks!'"),
        ("/bad", r"answered 400 Bad Request: '\{\"message\": \"inputData is required\"\}'"),
        ("/missing", "answered 404 Not Found: 'no such route'"),
        ("/redirect", "answered 302 Found; redirects and other non-2xx answers are not followed"),
        ("/huge", "with a body longer than CALLBACK_WORKER_HTTP_MAX_RESPONSE"),
    ],
)
async def test_answers_that_fail_the_step(receiver: Any, make_handler: Any, path: str, message: str) -> None:
    _, base = receiver
    with pytest.raises(Fail, match=message):
        await make_handler(f"{base}{path}", max_response="1024")(context())


@pytest.mark.parametrize(
    ("path", "message"), [("/boom", "answered 503 Service Unavailable: 'maintenance'"), ("/busy", "answered 429")]
)
async def test_server_errors_and_429_are_raised_for_the_worker_to_retry(
    receiver: Any, make_handler: Any, path: str, message: str
) -> None:
    _, base = receiver
    with pytest.raises(HttpCallError, match=message):
        await make_handler(f"{base}{path}")(context())


async def test_a_timeout_is_raised_naming_the_setting(receiver: Any, make_handler: Any) -> None:
    _, base = receiver
    with pytest.raises(HttpCallError, match=r"no answer within 0.3 s \(CALLBACK_WORKER_HTTP_TIMEOUT\)"):
        await make_handler(f"{base}/slow", timeout="0.3")(context())


async def test_a_connection_error_is_raised(make_handler: Any) -> None:
    with pytest.raises(HttpCallError, match=r"POST http://127.0.0.1:9/x failed: ClientConnectorError"):
        await make_handler("http://127.0.0.1:9/x")(context())


async def test_the_url_argument_is_used_only_when_allowed(receiver: Any, make_handler: Any) -> None:
    recorder, base = receiver
    arguments: dict[str, JSONValue] = {"http_url": f"{base}/list", "x": 1}
    assert await make_handler(f"{base}/ok")(context(arguments)) == {
        "model": "s3://m",
        "epochs": 3,
        "ok": True,
        "meta": '{"a":[1]}',
    }
    assert recorder.requests[-1][2]["arguments"] == {"http_url": f"{base}/list", "x": 1}
    allowed = make_handler(f"{base}/ok", allow_url_argument="true", allowed_urls=f"{base}/")
    with pytest.raises(Fail, match="JSON list"):
        await allowed(context(arguments))
    assert recorder.requests[-1][0] == "/list"
    assert recorder.requests[-1][2]["arguments"] == {"x": 1}
    with pytest.raises(Fail, match="'http_url' must be an http:// or https:// URL"):
        await allowed(context({"http_url": "file:///etc/passwd"}))


async def test_unconfigured_handler_fails_naming_the_variable(make_handler: Any) -> None:
    with pytest.raises(Fail, match="set CALLBACK_WORKER_HTTP_URL"):
        await make_handler()(context())


async def test_aclose_twice_and_reuse_after_close(receiver: Any, make_handler: Any) -> None:
    _, base = receiver
    handler = make_handler(f"{base}/ok")
    await handler(context())
    await handler.aclose()
    await handler.aclose()
    assert (await handler(context()))["epochs"] == 3


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("URL", "ftp://host/x", "CALLBACK_WORKER_HTTP_URL='ftp://host/x': Value error, must be an http"),
        ("TIMEOUT", "-1", "CALLBACK_WORKER_HTTP_TIMEOUT='-1'"),
        ("HEADERS", "Authorization: x", "CALLBACK_WORKER_HTTP_HEADERS: Value error, not valid JSON"),
        ("HEADERS", '{"Bad Name": "x"}', "CALLBACK_WORKER_HTTP_HEADERS: Value error, 'Bad Name' is not a valid"),
        ("HEADERS", '{"X-A": "a\\r\\nX-B: b"}', "CALLBACK_WORKER_HTTP_HEADERS: Value error, the value of header"),
        ("HEADERS", '{"X-A": 1}', "CALLBACK_WORKER_HTTP_HEADERS: Input should be a valid string"),
        ("MAX_RESPONSE", "1", "CALLBACK_WORKER_HTTP_MAX_RESPONSE='1'"),
        ("ALLOWED_URLS", "https://ok/,file:///x", "CALLBACK_WORKER_HTTP_ALLOWED_URLS: Value error, 'file:///x' is not"),
    ],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError) as caught:
        HttpHandler()
    assert message in str(caught.value)


def test_header_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{PREFIX}HEADERS", '{"Authorization": "Bearer s3cret", "Bad Name": "x"}')
    with pytest.raises(ConfigurationError) as caught:
        HttpHandler()
    assert "s3cret" not in str(caught.value)


def test_registered_as_an_entry_point() -> None:
    assert registered_handlers()["http"] == "callback_worker.handlers.http:HttpHandler"
