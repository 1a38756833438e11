"""A SageMaker outage to order: a reverse proxy on a fixed port of 127.0.0.1, in front of the emulator, in a thread.

The replicas' ``AWS_ENDPOINT_URL_SAGEMAKER`` points at the proxy. While it is **up** every request is forwarded
unchanged. **503**: every request is answered ``ServiceUnavailable`` with HTTP 503 and never reaches the emulator.
**refused**: the port stops listening (new connections are refused) and requests on connections already open are
cut off without an answer. :meth:`restore` brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

from tests.reliability.queues import free_port

Mode = Literal["up", "503", "refused"]
T = TypeVar("T")
_SKIP_REQUEST = frozenset({"host", "content-length", "transfer-encoding"})
_SKIP_REPLY = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection", "date", "server"})


class OutageProxy:
    """Forwards to ``upstream`` until told to fail; counts the requests it answered, failed and cut off."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode: Mode = "up"
        self.counts: Counter[str] = Counter()
        """Requests by what happened to them: ``forwarded``, ``503``, ``cut``."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="outage-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def answer_503(self) -> None:
        """Answer every request ``ServiceUnavailable`` (HTTP 503)."""
        self.mode = "503"

    def refuse(self) -> None:
        """Stop listening: connections are refused; requests on open connections get no answer."""
        self.mode = "refused"
        self._call(self._stop_listening())

    def restore(self) -> None:
        """Forward again, listening on the same port."""
        if self.mode == "refused":
            self._call(self._listen())
        self.mode = "up"

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _open(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _stop_listening(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        data = await request.read()
        if self.mode == "refused":
            self.counts["cut"] += 1
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("outage: no answer")
        if self.mode == "503":
            self.counts["503"] += 1
            body = json.dumps({"__type": "ServiceUnavailable", "message": "outage (injected)"})
            return web.Response(status=503, text=body, content_type="application/x-amz-json-1.1")
        self.counts["forwarded"] += 1
        return await self._forward(request, data)

    async def _forward(self, request: web.Request, data: bytes) -> web.Response:
        assert self._session is not None
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _SKIP_REQUEST}
        url = self.upstream + request.path_qs
        async with self._session.request(request.method, url, headers=headers, data=data) as response:
            body = await response.read()
            reply = {name: value for name, value in response.headers.items() if name.lower() not in _SKIP_REPLY}
            return web.Response(status=response.status, body=body, headers=reply)
