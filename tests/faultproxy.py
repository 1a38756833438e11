"""A fault-injecting HTTP reverse proxy for integration tests.

To fail one chosen call, put a small proxy in front of the real server. Tests point their clients at
``FaultProxy.url``; every call is forwarded to the real AWS-protocol server behind it (moto in server mode for
SQS, or the project's SageMaker emulator), except the calls a :class:`Rule` selects, which fail in one chosen
way. The client, botocore's retries, parsing and timeouts all run for real: nothing in botocore is stubbed.

Only the JSON protocol is understood: the operation is the part after the dot of ``X-Amz-Target``
(``AmazonSQS.SendMessage`` -> ``SendMessage``), the body is JSON. Neither moto nor the emulator verifies
SigV4, so a forwarded request whose body the proxy rewrote is not re-signed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

Kind = Literal["error", "lost_reply", "slow", "entry_error", "reset"]
KINDS: frozenset[str] = frozenset({"error", "lost_reply", "slow", "entry_error", "reset"})
SERVER_FAULTS = frozenset({"InternalError", "ServiceUnavailable"})
REQUEST_SKIP = frozenset({"host", "content-length", "transfer-encoding"})
REPLY_SKIP = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection", "date", "server"})


@dataclass
class Rule:
    """Fail the ``times`` next calls of ``operation`` (``"*"``: any) once ``after`` matching calls have passed.

    A call matches when its operation matches and ``when`` (given the request's JSON body) is true, if set.
    ``kind`` is what happens to the calls the rule takes:

    - ``"error"``: answer the AWS error ``code`` without forwarding; the call had no effect.
    - ``"lost_reply"``: forward (the server applies the call), then answer 500 ``InternalError``.
    - ``"slow"``: wait ``delay`` seconds, then forward.
    - ``"entry_error"`` (batch calls): forward only the entries not selected by ``entries`` (Ids; None: all) and
      report the selected ones in ``Failed`` with ``code`` and ``SenderFault`` (``sender_fault``, default false).
    - ``"reset"``: drop the connection without answering (recorded with status 0); nothing is forwarded.

    ``matched`` and ``fired`` count the matching calls seen and the calls failed so far.
    """

    operation: str
    kind: Kind
    times: int = 1
    after: int = 0
    when: Callable[[dict[str, Any]], bool] | None = None
    code: str = "InternalError"
    delay: float = 0.0
    entries: Collection[str] | None = None
    sender_fault: bool = False
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.times < 1 or self.after < 0 or self.delay < 0:
            raise ValueError(f"invalid rule: {self!r}")

    def matches(self, operation: str, body: dict[str, Any]) -> bool:
        return self.operation in ("*", operation) and (self.when is None or self.when(body))


@dataclass(frozen=True)
class Call:
    """One request the proxy answered: its operation, JSON body (as the client sent it), the status answered,
    the fault applied (the rule's kind, or None) and when it arrived (event loop time). A call is recorded once
    answered, so a ``"slow"`` call still waiting is not in ``FaultProxy.calls`` yet."""

    operation: str
    body: dict[str, Any]
    status: int
    fault: str | None
    time: float


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def error_reply(code: str, content_type: str = "application/x-amz-json-1.0") -> _Reply:
    """A JSON-protocol AWS error; ``x-amzn-query-error`` carries the code to query-compatible clients (SQS)."""
    status, fault = (500, "Receiver") if code in SERVER_FAULTS else (400, "Sender")
    body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    return _Reply(status, body, {"Content-Type": content_type, "x-amzn-query-error": f"{code};{fault}"})


class FaultProxy:
    """A reverse proxy on ``127.0.0.1`` (free port) in front of ``upstream``, failing the calls its rules select.

    Rules are consumed in the order added: a call goes to the first unexhausted rule it matches; while that
    rule is still skipping its ``after`` calls the call is forwarded unchanged. Exhausted rules are dropped.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.calls: list[Call] = []
        self.rules: list[Rule] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def add(self, rule: Rule) -> Rule:
        """Queue ``rule`` after the rules already added; returns it (its ``fired`` counts its faults)."""
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every pending rule: calls from now on pass through. ``calls`` is kept (``calls.clear()`` resets it)."""
        self.rules.clear()

    def count(self, operation: str) -> int:
        """How many calls of ``operation`` (``"*"``: any) the proxy has answered (those in ``calls``)."""
        return sum(1 for call in self.calls if operation in ("*", call.operation))

    def _take(self, operation: str, body: dict[str, Any]) -> Rule | None:
        rule = next((rule for rule in self.rules if rule.matches(operation, body)), None)
        if rule is None:
            return None
        rule.matched += 1
        if rule.matched <= rule.after:
            return None
        rule.fired += 1
        if rule.fired >= rule.times:
            self.rules.remove(rule)
        return rule

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = asyncio.get_running_loop().time()
        raw = await request.read()
        operation = request.headers.get("X-Amz-Target", "").partition(".")[2]
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        rule = self._take(operation, body)
        if rule is not None and rule.kind == "reset":
            self.calls.append(Call(operation, body, 0, rule.kind, arrived))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        reply = await self._apply(rule, request, raw, body)
        self.calls.append(Call(operation, body, reply.status, rule.kind if rule else None, arrived))
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    async def _apply(self, rule: Rule | None, request: web.Request, raw: bytes, body: dict[str, Any]) -> _Reply:
        content_type = request.headers.get("Content-Type", "application/x-amz-json-1.0")
        if rule is None:
            return await self._forward(request, raw)
        if rule.kind == "error":
            return error_reply(rule.code, content_type)
        if rule.kind == "lost_reply":
            await self._forward(request, raw)
            return error_reply("InternalError", content_type)
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            return await self._forward(request, raw)
        return await self._entry_error(rule, request, body, content_type)

    async def _entry_error(self, rule: Rule, request: web.Request, body: dict[str, Any], content_type: str) -> _Reply:
        entries: list[dict[str, Any]] = body.get("Entries", [])
        chosen = [entry["Id"] for entry in entries if rule.entries is None or entry["Id"] in rule.entries]
        failed = [
            {"Id": id_, "Code": rule.code, "Message": "injected fault", "SenderFault": rule.sender_fault}
            for id_ in chosen
        ]
        kept = [entry for entry in entries if entry["Id"] not in chosen]
        if not kept:
            answer: dict[str, Any] = {"Successful": [], "Failed": failed}
            return _Reply(200, json.dumps(answer).encode(), {"Content-Type": content_type})
        reply = await self._forward(request, json.dumps({**body, "Entries": kept}).encode())
        if reply.status != 200:
            return reply
        answer = json.loads(reply.body)
        answer["Failed"] = [*answer.get("Failed", []), *failed]
        return _Reply(200, json.dumps(answer).encode(), reply.headers)

    async def _forward(self, request: web.Request, data: bytes) -> _Reply:
        assert self._session is not None, "FaultProxy is not started"
        headers = {name: value for name, value in request.headers.items() if name.lower() not in REQUEST_SKIP}
        url = self.upstream + request.path_qs
        async with self._session.request(request.method, url, headers=headers, data=data) as response:
            reply_body = await response.read()
            reply_headers = {k: v for k, v in response.headers.items() if k.lower() not in REPLY_SKIP}
            return _Reply(response.status, reply_body, reply_headers)
