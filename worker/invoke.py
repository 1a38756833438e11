"""Calling handlers and their stop hooks — async ones on the event loop, sync ones in a thread pool — and closing
them when the worker stops. What a handler returns becomes an outcome in :mod:`worker.outcome`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from callback_worker.worker.handler import CallbackContext, Handler, HandlerResult, StopHook
from callback_worker.worker.logs import get_logger

log = get_logger("worker.invoke")


def is_async(function: object) -> bool:
    """True if calling ``function`` returns a coroutine (an ``async def`` function or ``__call__``)."""
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - the method itself is inspected, not callability
    return inspect.iscoroutinefunction(call)


#: Threads for sync stop hooks beyond one per handler thread, in a pool apart from the handlers': a hook must never
#: wait behind the very handler it has to stop (with every handler thread busy, it would never run), nor behind
#: the other hooks of a mass stop (every delivery in flight may be running one).
STOP_HOOK_THREADS = 4


class StopHookTimeout(TimeoutError):
    """A stop hook that did not finish within its time, or found no free thread within it."""


class Invoker:
    """Runs handlers and stop hooks; sync handlers go to a thread pool sized for the worker's concurrency, sync stop
    hooks to a pool of their own, as large plus :data:`STOP_HOOK_THREADS`."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._stop_executor: ThreadPoolExecutor | None = None
        self._async_handlers: dict[int, bool] = {}
        """Whether each handler (by id: handlers live as long as the worker) is async, looked up once."""

    async def call(self, handler: Handler, context: CallbackContext) -> HandlerResult:
        """The handler's result for ``context``; a :class:`Retry` or :class:`Fail` raised inside propagates."""
        known = self._async_handlers.get(id(handler))
        if known is None:
            known = self._async_handlers[id(handler)] = is_async(handler)
        call: Callable[[CallbackContext], Any] = handler
        result: Any = await (call(context) if known else self._run_sync(call, context))
        return result  # type: ignore[no-any-return]

    async def stop(self, handler: Handler, context: CallbackContext, limit: float) -> bool:
        """Run ``handler.on_stop(context)`` if the handler has one, for at most ``limit`` seconds from its start
        (:class:`StopHookTimeout` after that). Returns whether it did. A sync hook waits for a free thread only
        when earlier hooks overran their time and still hold theirs, and at most ``limit`` seconds too."""
        if not isinstance(handler, StopHook):
            return False
        if is_async(handler.on_stop):
            await _within(limit, cast(Awaitable[None], handler.on_stop(context)))
        else:
            await self._stop_in_thread(handler.on_stop, context, limit)
        return True

    async def _stop_in_thread(
        self, hook: Callable[[CallbackContext], Any], context: CallbackContext, limit: float
    ) -> None:
        if self._stop_executor is None:
            self._stop_executor = ThreadPoolExecutor(
                max_workers=self._threads + STOP_HOOK_THREADS, thread_name_prefix="stop-hook"
            )
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def run(context: CallbackContext) -> Any:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for the hook
                loop.call_soon_threadsafe(started.set)
            return hook(context)

        queued = self._stop_executor.submit(functools.partial(contextvars.copy_context().run, run, context))
        running = asyncio.wrap_future(queued)
        running.add_done_callback(lambda _: started.set())  # also ends the wait when the pool cancels the hook
        try:
            await _within(limit, started.wait())
        except StopHookTimeout:
            if queued.cancel():  # False: a thread took the hook up just now, and its time starts there
                raise StopHookTimeout(
                    f"no stop-hook thread came free within {limit:g} s (earlier hooks overran their time)"
                ) from None
        except BaseException:  # the delivery let go (a shutdown): a hook still queued must not start later
            queued.cancel()
            raise
        if queued.cancelled():
            raise RuntimeError("the stop hook never started: the worker stopped its threads first")
        result = await _within(limit, running)
        if inspect.isawaitable(result):  # a sync ``on_stop`` that returned an awaitable
            await _within(limit, result)

    def shutdown(self) -> None:
        """Stop accepting sync work; threads still running are not waited for."""
        for executor in (self._executor, self._stop_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    async def _run_sync(self, function: Callable[[CallbackContext], Any], context: CallbackContext) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="callback-handler")
        return await self._in_thread(self._executor, function, context)

    async def _in_thread(
        self, executor: ThreadPoolExecutor, function: Callable[[CallbackContext], Any], context: CallbackContext
    ) -> Any:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, function, context)
        result = await loop.run_in_executor(executor, call)
        if inspect.isawaitable(result):
            return await _await(result)
        return result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _within(limit: float, awaitable: Awaitable[Any]) -> Any:
    """``awaitable``'s result, or :class:`StopHookTimeout` once ``limit`` seconds have passed (a TimeoutError the
    awaitable raises itself stays what it is)."""
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise StopHookTimeout(f"the stop hook did not finish within {limit:g} s") from None
        raise


async def close_handlers(handlers: Iterable[object]) -> None:
    """Call each handler's ``aclose()`` (async) or ``close()`` (sync), if it has one; log, never raise, failures."""
    for handler in handlers:
        closer = getattr(handler, "aclose", None) or getattr(handler, "close", None)
        if not callable(closer):
            continue
        try:
            result = closer()
            if inspect.isawaitable(result):
                await result
        except Exception:  # a handler failing to close must not keep the others open
            log.exception("handler failed to close", handler=type(handler).__name__)
