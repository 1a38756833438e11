"""An in-memory world of replicas for the delivery-defect tests (tests/unit/test_delivery_defects.py).

One :class:`World` is one SQS queue (:class:`FaultyQueue`) and one SageMaker (:class:`FaultySageMaker`), both the
fakes of :mod:`tests.fakes` with a few more faults; :meth:`World.replica` adds a replica: its own dispatcher, lease
keeper, reporter, step resolver, invoker and memory of tokens, over the shared queue and SageMaker.

Time is :class:`Time`: the true time, read as SQS's clock (the queue's timestamps and visibility), as each replica's
monotonic clock, and as each replica's wall clock, which a test may step on its own (an NTP step).

The world builds the dispatcher on both versions of the daemon's API: ``build_dispatcher(clocks=Clocks(...))`` (a
monotonic and a wall clock, the lease keeper on the monotonic one) and the earlier ``build_dispatcher(clock=...)``
(one clock, the wall clock, for everything; the step resolver with a clock of its own, the monotonic one), chosen by
inspecting the signatures, so that one test body runs against either.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import pkgutil
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pytest

from callback_worker.worker.app import build_dispatcher
from callback_worker.worker.dispatch import Dispatcher, RetryPolicy
from callback_worker.worker.events import Event, Events, Tally
from callback_worker.worker.handler import Handler
from callback_worker.worker.invoke import Invoker
from callback_worker.worker.lease import LeaseKeeper
from callback_worker.worker.queue import ReceivedMessage
from callback_worker.worker.report import Reporter
from callback_worker.worker.retrying import BackoffPolicy
from callback_worker.worker.router import Router
from callback_worker.worker.step_context import StepResolver
from tests.fakes import TEST_SIGNING_KEY, FakeSageMaker, MemoryQueue, StoredMessage, Ticks

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

NOW = 1_767_225_600.0
#: The monotonic clock's reading at NOW (any origin: it is never compared with the other clocks).
MONOTONIC_ORIGIN = 5_000.0
#: Every retry loop's backoff in the tests: a millisecond, so that a loop that waits for a fault to clear spins fast.
FAST = BackoffPolicy(0.001, 0.001)
#: The module-level backoffs of both versions, patched to :data:`FAST` where the module has them.
BACKOFFS = (
    ("callback_worker.worker.sqs", "SQS_CALL_BACKOFF"),
    ("callback_worker.worker.step_context", "STEP_LOOKUP_BACKOFF"),
    ("callback_worker.worker.settle", "REQUEUE_BACKOFF"),
    ("callback_worker.worker.confirm", "INCONCLUSIVE_BACKOFF"),
)


def new_api() -> bool:
    """Whether the daemon takes two clocks (``build_dispatcher(clocks=...)``), rather than one."""
    return "clocks" in inspect.signature(build_dispatcher).parameters


def optional_module(name: str) -> ModuleType | None:
    """The module ``name``, or None where this version of the daemon has no such module. Looked for in its
    package's own directory: an editable install's finder would find a module of another checkout."""
    package, _, module = name.rpartition(".")
    if module not in {found.name for found in pkgutil.iter_modules(importlib.import_module(package).__path__)}:
        return None
    return importlib.import_module(name)


def fast_backoffs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every module-level retry backoff :data:`FAST`, in whichever version is imported."""
    for module_name, attribute in BACKOFFS:
        module = optional_module(module_name)
        if module is not None and hasattr(module, attribute):
            monkeypatch.setattr(module, attribute, FAST)


class Time:
    """The true time, and the clocks read from it: SQS's, and a replica's monotonic and wall clocks."""

    def __init__(self) -> None:
        self.now = NOW
        self.wall_offset = 0.0

    def sqs(self) -> float:
        """SQS's clock (epoch seconds): the queue's timestamps and visibility deadlines."""
        return self.now

    def monotonic(self) -> float:
        """A replica's monotonic clock: never stepped."""
        return self.now - NOW + MONOTONIC_ORIGIN

    def wall(self) -> float:
        """A replica's wall clock (epoch seconds): stepped by :meth:`step_wall`."""
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        """Time passes, on every clock."""
        self.now += seconds

    def step_wall(self, seconds: float) -> None:
        """The wall clock alone jumps (an NTP step); the true time, SQS's clock and the monotonic clock do not."""
        self.wall_offset += seconds


class FaultyQueue(MemoryQueue):
    """:class:`tests.fakes.MemoryQueue`, whose next ``SendMessage`` calls raise the exceptions in ``send_errors``."""

    def __init__(self, clock: Callable[[], float], *, visibility_timeout: int) -> None:
        super().__init__(clock, visibility_timeout=visibility_timeout)
        self.send_errors: deque[Exception] = deque()
        self.send_attempts = 0

    async def send(self, body: str, delay: int = 0) -> str:
        self.send_attempts += 1
        if self.send_errors:
            await asyncio.sleep(0)
            raise self.send_errors.popleft()
        return await super().send(body, delay)


class FaultySageMaker(FakeSageMaker):
    """:class:`tests.fakes.FakeSageMaker` with faults of any exception and a listing that may lag.

    * ``answer_errors`` — raised, one each, by the next ``Send*Success``/``Failure`` calls (nothing applied).
    * ``outage`` — while set, every answer call raises it (nothing applied).
    * ``list_fault`` — called with each ``ListPipelineExecutionSteps`` request; the exception it returns is raised.
    * ``hidden`` — tokens the listing does not show yet.
    """

    def __init__(self, queue: MemoryQueue, pipeline: str = "demo") -> None:
        super().__init__(queue, Ticks(), pipeline)
        self.answer_errors: deque[Exception] = deque()
        self.outage: Exception | None = None
        self.answer_attempts = 0
        self.list_fault: Callable[[Mapping[str, Any]], Exception | None] | None = None
        self.hidden: set[str] = set()
        self.list_requests: list[dict[str, Any]] = []

    async def send_pipeline_execution_step_success(self, **request: Any) -> dict[str, Any]:
        await self._answer_fault()
        return await super().send_pipeline_execution_step_success(**request)

    async def send_pipeline_execution_step_failure(self, **request: Any) -> dict[str, Any]:
        await self._answer_fault()
        return await super().send_pipeline_execution_step_failure(**request)

    async def list_pipeline_execution_steps(self, **request: Any) -> dict[str, Any]:
        self.list_requests.append(dict(request))
        fault = self.list_fault(request) if self.list_fault is not None else None
        if fault is not None:
            await asyncio.sleep(0)
            raise fault
        response = await super().list_pipeline_execution_steps(**request)
        response["PipelineExecutionSteps"] = [
            step
            for step in response["PipelineExecutionSteps"]
            if step["Metadata"]["Callback"]["CallbackToken"] not in self.hidden
        ]
        return response

    async def _answer_fault(self) -> None:
        self.answer_attempts += 1
        fault = self.answer_errors.popleft() if self.answer_errors else self.outage
        if fault is not None:
            await asyncio.sleep(0)
            raise fault


class Replica:
    """One replica of the daemon over the world's queue and SageMaker."""

    def __init__(
        self,
        world: World,
        handlers: Mapping[str, Handler],
        *,
        routes: Mapping[str, str] | None = None,
        default: str | None = None,
        threads: int = 2,
    ) -> None:
        self.world = world
        self.heard: list[Event] = []
        self.tally = Tally()
        events = Events((self.tally, self.heard.append))
        client = cast("SageMakerClient", world.sagemaker)
        time = world.time
        # The lease keeper reads the monotonic clock where the daemon has one; the one clock (the wall) before.
        self.leases = LeaseKeeper(
            world.queue, world.queue.visibility_timeout, time.monotonic if new_api() else time.wall, events=events
        )
        self.invoker = Invoker(threads=threads)
        self.router = Router(dict(handlers), default, "handler", dict(routes or {}))
        resolver: dict[str, Any] = {"describe": False, "events": events}
        if "clock" in inspect.signature(StepResolver).parameters:
            resolver["clock"] = time.monotonic  # its listing cache's ages (time.monotonic in the daemon)
        self.steps = StepResolver(client, **resolver)
        options: dict[str, Any] = {
            "queue": world.queue,
            "leases": self.leases,
            "reporter": Reporter(client, backoff=BackoffPolicy(0.0, 0.0), events=events),
            "router": self.router,
            "invoker": self.invoker,
            "retry": RetryPolicy(max_attempts=2, backoff=10.0),
            "steps": self.steps,
            "verify": True,
            "events": events,
        }
        if new_api():
            clocks = importlib.import_module("callback_worker.worker.clock").Clocks
            options["clocks"] = clocks(monotonic=time.monotonic, wall=time.wall)
        else:
            options["clock"] = time.wall
        if "keyring" in inspect.signature(build_dispatcher).parameters:  # continuations sealed, as deploy/ ships it
            keyring = importlib.import_module("callback_worker.worker.signing").Keyring
            options["keyring"] = keyring([TEST_SIGNING_KEY])
        self.dispatcher: Dispatcher = build_dispatcher(**options)
        self.tasks: list[asyncio.Task[None]] = []

    async def deliver(self, count: int = 10) -> int:
        """Receive what is visible and handle each delivery to its end; the number handled."""
        received = await self.world.queue.receive(count)
        for message in received:
            await self.dispatcher.handle(message)
        return len(received)

    def start(self, received: ReceivedMessage) -> asyncio.Task[None]:
        """Handle ``received`` in a task of its own (as the worker does)."""
        task = asyncio.create_task(self.dispatcher.handle(received))
        self.tasks.append(task)
        return task

    async def take(self, message: StoredMessage) -> asyncio.Task[None]:
        """Receive ``message`` (alone) and start handling it."""
        return self.start(await self.world.receive_only(message))

    async def shut_down(self) -> None:
        """What the worker does once a shutdown's grace is over (``Worker._drain``, then its clean-up): cancel the
        deliveries still under way, wait for them, and release the leases left over."""
        pending = [task for task in self.tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        leftover = list(self.leases.leases.values())
        if leftover:
            await self.leases.release(leftover)

    def close(self) -> None:
        self.invoker.shutdown()


class World:
    """One queue, one SageMaker, and the replicas over them."""

    def __init__(self, *, visibility_timeout: int = 30, pipeline: str = "demo") -> None:
        self.time = Time()
        self.queue = FaultyQueue(self.time.sqs, visibility_timeout=visibility_timeout)
        self.sagemaker = FaultySageMaker(self.queue, pipeline)
        self.replicas: list[Replica] = []

    def replica(
        self,
        handlers: Mapping[str, Handler],
        *,
        routes: Mapping[str, str] | None = None,
        default: str | None = None,
        threads: int = 2,
    ) -> Replica:
        """A new replica of ``handlers``, routed by the ``handler`` argument, then ``routes``, then ``default``."""
        self.replicas.append(Replica(self, handlers, routes=routes, default=default, threads=threads))
        return self.replicas[-1]

    def start(self, arguments: dict[str, Any] | None = None, *, steps: int = 1) -> tuple[str, list[str]]:
        """A new execution with ``steps`` callback steps (each with its Executing message): its ARN and tokens."""
        arn = self.sagemaker.start_execution()
        return arn, [self.sagemaker.start_step(arn, arguments or {}) for _ in range(steps)]

    def message_of(self, token: str, status: str = "Executing") -> StoredMessage:
        """The live message of ``token`` with ``status`` (the first, if several)."""
        for message in self.queue.live_messages():
            if message.document.get("token") == token and message.document.get("status") == status:
                return message
        raise LookupError(f"no live {status} message for {token}")

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(message.body) for message in self.queue.live()]

    async def receive_only(self, message: StoredMessage) -> ReceivedMessage:
        """Receive ``message`` through the queue's own receive, the other visible messages held back meanwhile."""
        others = [other for other in self.queue.visible() if other is not message]
        held = [(other, other.visible_at) for other in others]
        for other in others:
            other.visible_at = float("inf")
        try:
            [received] = await self.queue.receive(1)
        finally:
            for other, visible_at in held:
                other.visible_at = visible_at
        return received

    async def close(self) -> None:
        for replica in self.replicas:
            for task in replica.tasks:
                task.cancel()
            await asyncio.gather(*replica.tasks, return_exceptions=True)
            replica.close()


async def eventually(
    condition: Callable[[], bool], *, within: float = 2.0, done: Sequence[asyncio.Task[Any]] = ()
) -> bool:
    """Whether ``condition()`` holds within ``within`` seconds of real time (checked every millisecond); gives up
    early once every task in ``done`` has ended without it holding."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() >= deadline or (done and all(task.done() for task in done)):
            return condition()
        await asyncio.sleep(0.001)
    return True


__all__ = [
    "FAST",
    "NOW",
    "FaultyQueue",
    "FaultySageMaker",
    "Replica",
    "Time",
    "World",
    "eventually",
    "fast_backoffs",
    "new_api",
    "optional_module",
]
