"""The HTTP endpoint and its runners: in the caller's event loop, or in a thread of its own.

``EmulatorServer`` serves on the running event loop::

    async with EmulatorServer("127.0.0.1", port=0) as server:
        client = session.create_client("sagemaker", endpoint_url=server.endpoint_url)

``ThreadedEmulatorServer`` runs the same server on its own loop in a daemon thread, for synchronous code
(boto3 tests), with ``start()`` / ``stop()`` like moto's ``ThreadedMotoServer``.

Both offer a small introspection API for tests (messages sent, send failures, faults injected, waiting for
deliveries in flight); the state itself is best observed through the SageMaker API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from callback_worker.emulator.arns import Partition
from callback_worker.emulator.engine import Engine
from callback_worker.emulator.errors import (
    InternalFailureError,
    SerializationError,
    ServiceError,
    UnknownOperationError,
)
from callback_worker.emulator.faults import FaultConfig, FaultInjector
from callback_worker.emulator.operations import Operations
from callback_worker.emulator.protocol import (
    CONTENT_TYPE,
    EMULATOR_HEADER,
    REQUEST_ID_HEADER,
    TARGET_HEADER,
    encode_error,
    encode_result,
    new_request_id,
    operation_from_target,
    parse_body,
)
from callback_worker.emulator.ratelimit import RateLimiter
from callback_worker.emulator.s3 import ObjectReader, S3Reader
from callback_worker.emulator.sqs import MessageSender, SqsSender, StepMessage
from callback_worker.emulator.state import Store
from callback_worker.emulator.stubs import StubConfig
from callback_worker.emulator.validation import sagemaker_model, validate_request

logger = logging.getLogger("emulator")

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
# A PipelineDefinition may hold 1 MiB; leave room for the JSON around it.
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
_THREAD_START_TIMEOUT = 30.0


class EmulatorServer:
    """The local SageMaker Pipelines endpoint on the running event loop; an async context manager.

    ``endpoint_url`` is set once entered. Callback messages go to SQS through ``sender`` (default: an
    aiobotocore client from the standard AWS environment). ``faults`` may be replaced while serving. With
    ``max_running_executions`` set, StartPipelineExecution answers ``ResourceLimitExceeded`` while that many
    executions run (unlimited by default). ``stubs`` turns stubbed steps on (:mod:`emulator.stubs`);
    ``reader`` reads S3 objects (default: an aiobotocore client from the standard AWS environment, opened on
    first use). ``rate_limits`` throttles operations asked too fast (:mod:`emulator.ratelimit`).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        faults: FaultConfig | None = None,
        sender: MessageSender | None = None,
        max_running_executions: int | None = None,
        stubs: StubConfig | None = None,
        reader: ObjectReader | None = None,
        rate_limits: RateLimiter | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.partition = Partition(region, account)
        self.injector = FaultInjector(faults)
        self.rate_limits = rate_limits or RateLimiter()
        """Token buckets per operation (``--rate-limit``); a request finding its bucket empty is throttled."""
        self.calls: Counter[str] = Counter()
        """Requests received, by operation (benchmarks count the worker's calls with it)."""
        self.store = Store()
        self._sender = sender
        self._max_running_executions = max_running_executions
        self._stubs = stubs
        self._reader = reader
        self._engine: Engine | None = None
        self._operations: Operations | None = None
        self._stack = AsyncExitStack()
        self._endpoint_url: str | None = None

    # --- introspection ----------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._endpoint_url is None:
            raise RuntimeError("the emulator is not running")
        return self._endpoint_url

    @property
    def engine(self) -> Engine:
        """The execution engine (available while running)."""
        if self._engine is None:
            raise RuntimeError("the emulator is not running")
        return self._engine

    @property
    def faults(self) -> FaultConfig:
        """The faults in force; assign a new :class:`FaultConfig` to change them (the RNG is re-seeded)."""
        return self.injector.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self.injector.config = config

    @property
    def sent_messages(self) -> list[StepMessage]:
        """Every callback message a queue accepted, oldest first (a copy)."""
        return list(self.engine.sent)

    @property
    def send_failures(self) -> list[tuple[StepMessage, str]]:
        """Every callback message a queue refused, with the error (a copy)."""
        return list(self.engine.send_failures)

    async def wait_idle(self) -> None:
        """Wait until no callback message is being delivered."""
        await self.engine.wait_idle()

    # --- life cycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> EmulatorServer:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._endpoint_url = None
        await self._stack.aclose()

    async def _open(self) -> None:
        # Loaded before serving so that the first request does not pay for it.
        sagemaker_model()
        sender = self._sender
        if sender is None:
            sender = await self._stack.enter_async_context(SqsSender(self.partition.region))
        reader = self._reader
        if reader is None:
            s3 = S3Reader(self.partition.region)
            self._stack.push_async_callback(s3.aclose)
            reader = s3
        self._engine = Engine(
            self.store,
            self.partition,
            sender,
            max_running_executions=self._max_running_executions,
            stubs=self._stubs,
            reader=reader,
        )
        self._stack.push_async_callback(self._engine.aclose)
        self._operations = Operations(self.store, self._engine, self.partition, reader=reader)
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.port = port
        self._endpoint_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # --- requests ---------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        request_id = new_request_id()
        try:
            result = await self._dispatch(request)
        except ServiceError as error:
            logger.debug("%s %s -> %s", request.headers.get(TARGET_HEADER), request_id, error.code)
            return _response(encode_error(error), error.status, request_id)
        except Exception:  # a bug must still answer in the protocol, never as an HTML page
            logger.exception("request %s failed", request_id)
            failure = InternalFailureError("The emulator failed to handle the request; see its log")
            return _response(encode_error(failure), failure.status, request_id)
        return _response(encode_result(result), 200, request_id)

    async def _dispatch(self, request: web.Request) -> dict[str, Any]:
        if request.method != "POST" or request.path != "/":
            raise UnknownOperationError(
                f"{request.method} {request.path} is not an operation; send POST / with {TARGET_HEADER}"
            )
        operation = operation_from_target(request.headers.get(TARGET_HEADER))
        self.calls[operation] += 1
        self.rate_limits.check(operation)
        await self.injector.before(operation)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise SerializationError(f"The request body exceeds {_MAX_REQUEST_BYTES} bytes") from None
        params = parse_body(raw)
        validate_request(operation, params)
        if self._operations is None:
            raise RuntimeError("the emulator is not running")
        result = self._operations.handlers[operation](params)
        if inspect.isawaitable(result):
            result = await result
        self.injector.after(operation)
        return result


def _response(body: bytes, status: int, request_id: str) -> web.Response:
    headers = {"Content-Type": CONTENT_TYPE, REQUEST_ID_HEADER: request_id, EMULATOR_HEADER: "1"}
    return web.Response(body=body, status=status, headers=headers)


class ThreadedEmulatorServer:
    """An :class:`EmulatorServer` on its own event loop in a daemon thread, for synchronous callers.

    ``start()`` returns once the server listens (or raises what stopped it from starting); ``stop()`` shuts
    it down and joins the thread. Also a context manager. Keyword options are those of
    :class:`EmulatorServer`.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, **options: Any) -> None:
        self._server = EmulatorServer(host, port, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def server(self) -> EmulatorServer:
        """The server running in the thread (read its state from here; change it through :meth:`call`)."""
        return self._server

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the running server."""
        return self._server.endpoint_url

    @property
    def injector(self) -> FaultInjector:
        """The server's fault injector (its ``counts`` and ``injected()`` report what was injected)."""
        return self._server.injector

    @property
    def sent_messages(self) -> list[StepMessage]:
        """Every callback message a queue accepted, oldest first (a copy)."""
        return self._server.sent_messages

    @property
    def send_failures(self) -> list[tuple[StepMessage, str]]:
        """Every callback message a queue refused, with the error (a copy)."""
        return self._server.send_failures

    @property
    def faults(self) -> FaultConfig:
        """The faults in force; assigning applies the new config on the server's loop."""
        return self._server.faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        def apply() -> None:
            self._server.faults = config

        self.call(apply)

    def injected(self, operation: str, kind: str) -> int:
        """How many faults of ``kind`` (``throttle``, ``error``, ``error_after``) hit ``operation``."""
        return self._server.injector.injected(operation, kind)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no callback message is being delivered."""
        self._run(self._server.wait_idle(), timeout)

    def call(self, function: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``function`` on the server's loop (where its state lives) and return its result."""

        async def wrapper() -> T:
            return function()

        return self._run(wrapper(), timeout)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the emulator is not running")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self) -> None:
        """Start serving; returns once ``endpoint_url`` answers."""
        if self._thread is not None:
            raise RuntimeError("the emulator was already started")
        self._thread = threading.Thread(target=self._main, name="sagemaker-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_THREAD_START_TIMEOUT):
            raise RuntimeError("the emulator did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Stop serving and join the thread (does nothing if not running)."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join()
        self._thread = None

    def __enter__(self) -> ThreadedEmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as error:  # noqa: BLE001 - handed to start(), which re-raises it in the caller
            self._error = error
        finally:
            self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._ready.set()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop = asyncio.Event()
        async with self._server:
            self._loop = loop
            self._ready.set()
            await self._stop.wait()
