"""What the handler tests share: callback contexts and tokens, a clean settings environment, handler factories, the
moto server's control API, local stub servers, and a check on processes.

``tests/unit/test_handler_*.py`` and ``tests/integration/test_handler_*.py`` import from here; each keeps its own
autouse ``clean_env`` fixture (calling :func:`clear_settings`) and names its ``make_handler`` fixture with
:func:`handler_factory_fixture` (or :func:`handler_builder` where the factory takes more than settings).
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import pytest
from aiohttp import web

from callback_worker.worker.handler import CallbackContext, JSONValue

TOKEN = "26vcYbeWsZ"
"""The fixed token of tests that answer one step."""
HANDLER_ARGUMENT = "CALLBACK_WORKER_HANDLER_ARGUMENT"
"""A worker setting every handler's settings read besides their own prefix."""


def callback_context(
    handler_name: str,
    token: str,
    arguments: Mapping[str, JSONValue] | None = None,
    state: JSONValue = None,
    *,
    attempt: int = 1,
) -> CallbackContext:
    """The context a handler gets for a step of execution ``e1`` of pipeline ``p``, message ``m-1``."""
    return CallbackContext(
        token=token,
        pipeline_execution_arn="arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        pipeline_name="p",
        execution_id="e1",
        arguments=dict(arguments or {}),
        handler_name=handler_name,
        message_id="m-1",
        attempt=attempt,
        state=state,
    )


def new_token() -> str:
    """A fresh callback token, so that one test's steps never meet another's."""
    return uuid.uuid4().hex[:10]


# --- settings in the environment ---------------------------------------------------------------------------------


def clear_settings(monkeypatch: pytest.MonkeyPatch, prefix: str, *extra_names: str) -> None:
    """Remove, for this test, every variable starting with ``prefix`` and each of ``extra_names``."""
    for name in list(os.environ):
        if name.startswith(prefix) or name in extra_names:
            monkeypatch.delenv(name)


def set_settings(monkeypatch: pytest.MonkeyPatch, prefix: str, settings: Mapping[str, str]) -> None:
    """Set ``{prefix}{NAME}`` for each ``name=value`` of ``settings``, for this test."""
    for name, value in settings.items():
        monkeypatch.setenv(f"{prefix}{name.upper()}", value)


class ClosableHandler(Protocol):
    async def aclose(self) -> None: ...


H = TypeVar("H", bound=ClosableHandler)


@asynccontextmanager
async def handler_builder(
    monkeypatch: pytest.MonkeyPatch, prefix: str, handler_class: Callable[[], H]
) -> AsyncIterator[Callable[..., H]]:
    """``make(**settings)``: set the settings (``{prefix}{NAME}``), build a handler; all are closed on leaving."""
    built: list[H] = []

    def make(**settings: str) -> H:
        set_settings(monkeypatch, prefix, settings)
        built.append(handler_class())
        return built[-1]

    try:
        yield make
    finally:
        for handler in built:
            await handler.aclose()


def handler_factory_fixture(handler_class: Callable[[], H], prefix: str) -> Callable[..., Any]:
    """A ``make_handler`` fixture for ``handler_class``: a :func:`handler_builder` for the test.

    Assign it in the test module: ``make_handler = handler_factory_fixture(GlueHandler, PREFIX)``.
    """

    @pytest.fixture
    async def make_handler(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., H]]:
        async with handler_builder(monkeypatch, prefix, handler_class) as make:
            yield make

    return make_handler


def registered_handlers() -> dict[str, str]:
    """The ``callback_worker.handlers`` entry points pyproject.toml declares: name to ``module:object``."""
    pyproject: dict[str, Any] = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    return dict(pyproject["project"]["entry-points"]["callback_worker.handlers"])


# --- the moto server's control API -------------------------------------------------------------------------------


def moto_api(moto_url: str, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` to ``/moto-api/{path}`` of the test's moto server, blocking."""
    url = f"{moto_url}/moto-api/{path}"  # the test's own moto server
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310
    with urllib.request.urlopen(request) as response:  # noqa: S310
        assert response.status == 201


async def moto_api_async(moto_url: str, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` to ``/moto-api/{path}`` of the test's moto server, on the event loop."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{moto_url}/moto-api/{path}", data=json.dumps(body)) as response,
    ):
        assert response.status == 201


# --- local stub servers ------------------------------------------------------------------------------------------


@asynccontextmanager
async def local_server(
    route: str, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 (free port) answering POSTs to ``route`` with ``handle``; yields its URL."""
    app = web.Application()
    app.router.add_post(route, handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def stub_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    endpoint_variable: str,
    route: str,
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A :func:`local_server` that ``endpoint_variable`` (``AWS_ENDPOINT_URL_<SERVICE>``) points at; yields its URL."""
    async with local_server(route, handle) as url:
        monkeypatch.setenv(endpoint_variable, url)
        yield url


# --- processes ---------------------------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped by whoever adopted it) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
