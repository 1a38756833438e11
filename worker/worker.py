"""The supervisor: pollers that receive only into free slots, the lease ticker, signals, and the two-phase drain.

A slot is held from the receive until the message's outcome is settled (answered, re-queued or left); the delete
that follows is batched bookkeeping and no longer holds it, so a poller can receive again while the deletes of the
last batch are on their way. A poller that finds fewer than ten slots free while handlers are running waits up to
``RECEIVE_GATHER`` for more to free up, so that fast handlers finishing one after another are refilled with one
receive of ten rather than ten receives of one.

Stop sequence: no new receive starts; in-flight handlers finish within the grace period, then what is left is
cancelled; every unfinished message is made visible again (visibility 0), so that another replica takes it at once
rather than after the visibility timeout. A long poll already open is *not* cancelled: SQS would still hand messages
to the abandoned request and hide them for a whole visibility timeout. It is left to return (within
``CALLBACK_WORKER_WAIT_TIME``, while the handlers drain), and whatever it brings is released unstarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from callback_worker.config.limits import MAX_RECEIVE
from callback_worker.worker.dispatch import Dispatcher
from callback_worker.worker.events import Event, Events, ReportStarted, Settled, Tally, on
from callback_worker.worker.handler import Handler
from callback_worker.worker.health import Health
from callback_worker.worker.invoke import Invoker, close_handlers
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.logs import get_logger
from callback_worker.worker.looplag import LoopLag
from callback_worker.worker.queue import Queue, ReceivedMessage, settle
from callback_worker.worker.retrying import RECEIVE_BACKOFF, error_code, is_transient
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.taxonomy import MISCONFIGURATION_CODES
from callback_worker.worker.watch import StepWatch

log = get_logger("worker.worker")


#: The delivery task the current task works for (set in each delivery's context, inherited by the tasks it starts).
_DELIVERY_TASK: ContextVar[asyncio.Task[Any] | None] = ContextVar("callback_worker_delivery_task", default=None)

#: Seconds a poller waits for more free slots before a receive of fewer than ten (only while handlers run).
RECEIVE_GATHER = 0.01


class Slots:
    """Free handler slots; pollers take up to ten at a time and receive only that many messages."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._changed = asyncio.Event()
        self._changed.set()

    async def take(self, most: int, gather: float = 0.0) -> int:
        """Wait for at least one free slot; take up to ``most``, waiting up to ``gather`` seconds for that many
        while slots are in use (they may be about to free up)."""
        while self.free == 0:
            await self._wait_change()
        wanted = min(most, self.capacity)
        if self.free < wanted and gather > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gather):
                    while self.free < wanted:
                        await self._wait_change()
        taken = min(most, self.free)
        self.free -= taken
        return taken

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def give(self, count: int = 1) -> None:
        self.free += count
        self._changed.set()

    @property
    def in_use(self) -> int:
        return self.capacity - self.free


@dataclass(frozen=True, slots=True)
class Parts:
    """What a worker is made of, built by :func:`worker.app.build_worker` (the one place that builds them)."""

    queue: Queue
    dispatcher: Dispatcher
    leases: LeaseKeeper
    invoker: Invoker
    handlers: Mapping[str, Handler]
    events: Events
    sagemaker: SageMakerCalls
    """The door of every SageMaker call (rate limiter, reachability), for /readyz and the metrics."""
    watch: StepWatch | None = None


class Worker:
    """The daemon: receives messages and hands each to the dispatcher, within the configured concurrency."""

    def __init__(self, parts: Parts, *, concurrency: int, shutdown_grace: float, pollers: int = 1) -> None:
        self.queue = parts.queue
        self.dispatcher = parts.dispatcher
        self.leases = parts.leases
        self.invoker = parts.invoker
        self.handlers = parts.handlers
        self.events = parts.events
        self.watch = parts.watch
        self.sagemaker = parts.sagemaker
        self.tally = Tally()
        """Counts of what happened (received, success, failure, …): the "worker stopped" line, and tests."""
        self.events.subscribe(self.tally)
        self.events.subscribe(on(Settled, lambda _: self._free_slot()))
        self.events.subscribe(on(ReportStarted, self._report_started))
        self.slots = Slots(concurrency)
        self.loop_lag = LoopLag(events=self.events)
        self.shutdown_grace = shutdown_grace
        self.pollers = pollers
        queue = self.queue
        sagemaker = self.sagemaker
        self.health = Health(
            stall_after=queue.wait_time + 60.0, probe=lambda: queue.reachable, sagemaker=lambda: sagemaker.reachable
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self._settled: set[asyncio.Task[None]] = set()
        """Tasks whose outcome is settled and whose slot is free again (their delete may still be running)."""
        self._stopping = False
        self._receiving: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain. Raises WorkerError-free; fatal queue errors propagate."""
        background = [asyncio.create_task(self.leases.run()), asyncio.create_task(self.loop_lag.run())]
        if self.watch is not None:
            background.append(asyncio.create_task(self.watch.run()))
        pollers = [asyncio.create_task(self._poll(index)) for index in range(self.pollers)]
        self.health.running = True
        log.info("worker started", concurrency=self.slots.capacity, pollers=self.pollers)
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *pollers], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    task.result()  # a poller ended: surface its fatal error
        finally:
            self.health.draining = True
            self._stopping = True
            stopper.cancel()
            for task in pollers:
                if task not in self._receiving:
                    task.cancel()  # waiting for a slot or backing off: nothing to lose
            await asyncio.gather(self._drain(), self._finish_polls(pollers))
            for task in background:
                task.cancel()  # the lease ticker finishes a round under way before it stops
            await asyncio.gather(*background, return_exceptions=True)
            leftover = list(self.leases.leases.values())
            if leftover:
                await self.leases.release(leftover)
                log.info("released unfinished messages", count=len(leftover))
            await self.queue.close()
            self.invoker.shutdown()
            await close_handlers({id(handler): handler for handler in self.handlers.values()}.values())
            log.info("worker stopped", **dict(self.tally))

    async def _poll(self, index: int) -> None:
        backoff = RECEIVE_BACKOFF.start()
        current = asyncio.current_task()
        assert current is not None  # noqa: S101 - a poller always runs as a task
        while not self._stopping:
            self.health.saturated = self.slots.free == 0
            wanted = await self.slots.take(MAX_RECEIVE, RECEIVE_GATHER)
            self.health.saturated = False
            self._receiving.add(current)
            try:
                messages = await self.queue.receive(wanted)
            except asyncio.CancelledError:
                self.slots.give(wanted)
                raise
            except Exception as exc:  # noqa: BLE001 - the poller outlives every receive error; fatal ones are logged
                self.slots.give(wanted)
                self.health.last_attempt = time.monotonic()
                self._receive_failed(exc, index)
                if self._stopping:
                    return
                await backoff.sleep()
                continue
            finally:
                self._receiving.discard(current)
            if self._stopping:
                self.slots.give(wanted)
                await self._release_unstarted(messages)
                return
            backoff.reset()
            self.health.last_attempt = self.health.last_poll = time.monotonic()
            self.health.last_poll_wall = time.time()
            self.health.sqs_reachable = True
            self.slots.give(wanted - len(messages))
            for message in messages:
                task = asyncio.create_task(self._deliver(message))
                self.tasks.add(task)
                task.add_done_callback(self._done)

    async def _deliver(self, message: ReceivedMessage) -> None:
        # Tasks the delivery starts (its report, for one) inherit this: whatever they publish frees its slot.
        _DELIVERY_TASK.set(asyncio.current_task())
        await self.dispatcher.handle(message)

    def _receive_failed(self, exc: Exception, index: int) -> None:
        code = error_code(exc)
        self.health.sqs_reachable = False
        if code in MISCONFIGURATION_CODES:
            log.error("cannot receive from the queue; check the queue URL and permissions", error=code, poller=index)
        elif is_transient(exc):
            log.warning("receive failed; backing off", error=f"{code}: {exc}", poller=index)
        else:
            log.error("receive failed; backing off", error=f"{code}: {exc}", poller=index)

    async def _finish_polls(self, pollers: list[asyncio.Task[None]]) -> None:
        """Let open long polls return (they end within the wait time); cancel one that hangs past it."""
        if not pollers:
            return
        _, hung = await asyncio.wait(pollers, timeout=self.queue.wait_time + 10.0)
        for task in hung:
            task.cancel()
        results = await asyncio.gather(*pollers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("a poller ended with an error during shutdown", error=f"{type(result).__name__}: {result}")

    async def _release_unstarted(self, messages: list[ReceivedMessage]) -> None:
        """Messages a long poll brought after the stop: visible again at once, never started here."""
        if not messages:
            return
        errors = await settle([self.queue.set_visibility(message.receipt_handle, 0) for message in messages])
        failed = sum(error is not None for error in errors)
        log.info("released messages received while stopping", count=len(messages), failed=failed)

    def _free_slot(self) -> None:
        """The current message's outcome is settled: its slot may take the next message."""
        task = _DELIVERY_TASK.get() or asyncio.current_task()
        if task in self.tasks and task not in self._settled:
            self._settled.add(task)
            self.slots.give()

    def _report_started(self, event: Event) -> None:
        """The current message's outcome is decided and on its way to SageMaker, which may make it wait (the rate
        limiter, throttling, an outage): its slot takes the next message while its lease is kept. At most
        ``concurrency`` reports wait without a slot; beyond that they keep theirs, so that intake stops rather
        than leasing the whole queue while SageMaker is slow."""
        if isinstance(event, ReportStarted) and event.pending <= self.slots.capacity:
            self._free_slot()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task in self._settled:
            self._settled.discard(task)
        else:
            self.slots.give()

    async def _drain(self) -> None:
        if not self.tasks:
            return
        log.info("draining", in_flight=len(self.tasks), grace=self.shutdown_grace)
        _, pending = await asyncio.wait(set(self.tasks), timeout=self.shutdown_grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("grace period over; cancelling unfinished handlers", cancelled=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """Set ``stop`` on SIGTERM or SIGINT while inside the block (inside the running loop)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
