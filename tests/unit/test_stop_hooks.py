"""Stop hooks' time: a hook gets its whole timeout to run, however many hooks a mass stop starts at once.

Before: sync hooks shared four threads, and the 60 s timeout started when a hook was queued, not when it ran; a
stop of more steps than four, each hook taking a while (cancelling a job and waiting for it), ran the fifth hook
for what was left of its time after the first four, and the ninth not at all.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from callback_worker.testing.context import make_context
from callback_worker.worker.handler import CallbackContext
from callback_worker.worker.invoke import STOP_HOOK_THREADS, Invoker, StopHookTimeout

#: Seconds each hook works, and the limit: one hook's work fits in it (with a second to spare), a wait for a thread
#: as long as that work and the work itself do not.
WORK = 2.0
TIMEOUT = 3.0


class SlowStop:
    """A sync handler whose stop hook works ``WORK`` seconds, or until ``release`` is set, or until every hook of
    its ``barrier`` runs at once (``BrokenBarrierError`` if they cannot)."""

    def __init__(self, release: threading.Event | None = None, barrier: threading.Barrier | None = None) -> None:
        self.release = release
        self.barrier = barrier
        self.finished: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, context: CallbackContext) -> dict[str, str]:
        return {}

    def on_stop(self, context: CallbackContext) -> None:
        if self.barrier is not None:
            self.barrier.wait()
        elif self.release is not None:
            self.release.wait(30)
        else:
            time.sleep(WORK)
        with self.lock:
            self.finished.append(context.token)


def contexts(count: int) -> list[CallbackContext]:
    return [make_context(token=f"T{index:09d}") for index in range(count)]


def hooks(invoker: Invoker, handler: SlowStop, count: int, limit: float) -> list[asyncio.Future[bool]]:
    return [asyncio.ensure_future(invoker.stop(handler, context, limit)) for context in contexts(count)]


async def test_every_slot_can_run_a_sync_hook_at_once() -> None:
    """A mass stop: every delivery a replica holds runs its hook at the same time (the hooks meet at a barrier only
    when all of them run at once; four threads in all made the fifth wait behind the first four)."""
    threads = 3
    count = threads + STOP_HOOK_THREADS
    invoker = Invoker(threads=threads)
    handler = SlowStop(barrier=threading.Barrier(count, timeout=20))
    try:
        results = await asyncio.gather(*hooks(invoker, handler, count, 60), return_exceptions=True)
    finally:
        invoker.shutdown()
    assert results == [True] * count
    assert len(handler.finished) == count


async def test_a_hook_has_its_whole_time_from_its_start_after_waiting_for_a_thread() -> None:
    """Every thread held by a hook that overruns; the next hook waits ``WORK`` seconds for one, then works ``WORK``
    seconds: within its limit counted from its start, beyond it counted from its queueing."""
    invoker = Invoker(threads=1)
    release = threading.Event()
    held = hooks(invoker, SlowStop(release), 1 + STOP_HOOK_THREADS, 3600)
    late = SlowStop()
    try:
        await asyncio.sleep(0.2)  # every thread now runs a held hook
        waiting = asyncio.ensure_future(invoker.stop(late, make_context(token="Tlate"), TIMEOUT))
        await asyncio.sleep(WORK)
        release.set()  # threads come free
        assert await waiting is True
    finally:
        release.set()
        await asyncio.gather(*held, return_exceptions=True)
        invoker.shutdown()
    assert late.finished == ["Tlate"]


async def test_a_hook_that_overruns_its_time_times_out() -> None:
    invoker = Invoker(threads=1)
    release = threading.Event()
    handler = SlowStop(release)
    try:
        with pytest.raises(StopHookTimeout, match=r"did not finish within 0\.5 s"):
            await invoker.stop(handler, make_context(), 0.5)
    finally:
        release.set()
        invoker.shutdown()


async def test_a_hook_finding_every_thread_held_by_overrunning_hooks_gives_up_within_its_time() -> None:
    """Hooks that never return hold their threads; the next one waits for a thread at most its timeout, so the
    step is still answered (the stopper answers it after the hook fails)."""
    invoker = Invoker(threads=1)
    release = threading.Event()
    wedged = SlowStop(release)
    pool = 1 + STOP_HOOK_THREADS
    try:
        held = hooks(invoker, wedged, pool, 3600)
        await asyncio.sleep(0.2)  # every thread now runs a wedged hook
        with pytest.raises(StopHookTimeout, match="no stop-hook thread came free"):
            await invoker.stop(SlowStop(), make_context(), 0.5)
    finally:
        release.set()
        await asyncio.gather(*held, return_exceptions=True)
        invoker.shutdown()
    assert len(wedged.finished) == pool


async def test_a_hook_whose_delivery_lets_go_while_it_waits_for_a_thread_never_starts() -> None:
    """A shutdown cancels the delivery while its hook waits for a thread: the message goes back to the queue and
    another replica stops the step; the hook must not start here later, when a thread comes free."""
    invoker = Invoker(threads=1)
    release = threading.Event()
    wedged, late = SlowStop(release), SlowStop(threading.Event())
    assert late.release is not None
    late.release.set()  # the late hook, should it ever start, returns at once
    held = hooks(invoker, wedged, 1 + STOP_HOOK_THREADS, 3600)
    try:
        await asyncio.sleep(0.2)  # every thread now runs a wedged hook
        waiting = asyncio.ensure_future(invoker.stop(late, make_context(token="Tlate"), TIMEOUT))
        await asyncio.sleep(0.1)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    finally:
        release.set()
        await asyncio.gather(*held, return_exceptions=True)
    await asyncio.sleep(0.5)  # time for the late hook, had it been left queued, to start and finish
    invoker.shutdown()
    assert len(wedged.finished) == 1 + STOP_HOOK_THREADS
    assert late.finished == []


async def test_an_async_hook_runs_on_the_loop_within_its_time() -> None:
    ran: list[str] = []

    class AsyncStop:
        async def __call__(self, context: CallbackContext) -> dict[str, str]:
            return {}

        async def on_stop(self, context: CallbackContext) -> None:
            await asyncio.sleep(3600 if context.token.endswith("slow") else 0)
            ran.append(context.token)

    invoker = Invoker(threads=1)
    handler = AsyncStop()
    assert await invoker.stop(handler, make_context(token="Tquick"), TIMEOUT) is True
    with pytest.raises(StopHookTimeout):
        await invoker.stop(handler, make_context(token="Tslow"), 0.05)
    assert ran == ["Tquick"]


async def test_a_handler_without_a_hook_runs_nothing() -> None:
    plain: Callable[[CallbackContext], dict[str, str]] = lambda context: {}  # noqa: E731 - a handler is a callable
    assert await Invoker(threads=1).stop(plain, make_context(), TIMEOUT) is False
