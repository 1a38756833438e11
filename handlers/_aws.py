"""What the AWS job handlers (``glue``, ``batch``, ``stepfunctions``) share: clients, error mapping, the poll loop.

A job handler's first call finds or starts the job and answers ``Retry(poll_interval, state)``; every later call
polls it once and answers again, until the job ends. No worker slot is held while the job runs, and the state (the
job's identity and start time) travels in the re-queued message, so a restart loses nothing.

**Continuation state is not trusted.** Anyone who may send to the queue can write a continuation's state, so before a
job named in the state is polled or stopped (and before ``on_stop`` runs with a state), the handler checks that it is
this step's job: the job, queue or state machine the handler's settings (or an allowed step argument) choose, and the
name or marker derived from the token. A state naming anything else fails the step, naming the mismatch; the job it
names is neither polled nor stopped.

AWS errors: throttling, 5xx and connection trouble propagate (the worker retries the call with backoff, up to
``CALLBACK_WORKER_MAX_ATTEMPTS``); any other AWS error (no such job, access denied, bad parameter) answers the step
with a Failure naming the error code at once, since calling again would not change it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from botocore.exceptions import ClientError, ParamValidationError
from pydantic import Field

from callback_worker.handlers._context import preview
from callback_worker.handlers._settings import HandlerSettings
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, OutputValue, Retry
from callback_worker.worker.retrying import error_code, is_transient

C = TypeVar("C")

#: Seconds allowed between a continuation's polls, at most: 12 hours keeps every continuation well inside SQS limits.
MAX_POLL_INTERVAL = 43_200.0
#: The longest ``max_wait`` accepted: 30 days.
MAX_WAIT_LIMIT = 2_592_000.0


class LazyClient(Generic[C]):
    """An aiobotocore client created on first use (on the running loop) and kept until :meth:`aclose`."""

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        self._factory = factory
        self._client: C | None = None
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> C:
        """The client, created now if this is the first call."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = AsyncExitStack()
                    self._client = await stack.enter_async_context(self._factory())
                    self._stack = stack
        return self._client

    async def aclose(self) -> None:
        """Close the client if one was created; a later :meth:`get` creates a new one."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def client_error_message(exc: ClientError) -> str:
    """``Code: message`` of an AWS error."""
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return f"{error_code(exc)}: {message}"


@asynccontextmanager
async def aws_errors(what: str) -> AsyncIterator[None]:
    """Turn permanent AWS errors raised inside into a :class:`Fail` starting with ``what``; transient ones propagate."""
    try:
        yield
    except ClientError as exc:
        if is_transient(exc):
            raise
        raise Fail(f"{what}: {client_error_message(exc)}") from exc
    except ParamValidationError as exc:
        raise Fail(f"{what}: {exc}") from exc


def check_target(what: str, named: str, expected: str) -> None:
    """:class:`Fail` unless the continuation state names ``expected``: a forged state must not steer the handler."""
    if named != expected:
        raise Fail(
            f"the continuation state names {what} {preview(named, 120)}, not this step's {preview(expected, 120)}; "
            "it was neither polled nor stopped"
        )


@dataclass(frozen=True, slots=True)
class JobRef:
    """Which job a step started, as kept in the continuation's state."""

    id: str
    """Glue job run id, Batch job id, or Step Functions execution ARN."""
    scope: str
    """Glue job name, Batch job queue, or state machine ARN."""
    started: float
    """When this handler first saw the job (epoch seconds), for ``max_wait``."""

    def dump(self) -> dict[str, JSONValue]:
        return {"id": self.id, "scope": self.scope, "started": self.started}

    @classmethod
    def load(cls, state: JSONValue) -> JobRef | None:
        """The job of a continuation, or ``None`` on a first call. State from another handler is a :class:`Fail`."""
        if state is None:
            return None
        if isinstance(state, dict):
            job_id, scope, started = state.get("id"), state.get("scope"), state.get("started")
            if isinstance(job_id, str) and isinstance(scope, str) and isinstance(started, int | float):
                return cls(job_id, scope, float(started))
        raise Fail(f"the continuation state {str(state)[:80]!r} is not this handler's; was the step re-routed?")


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One poll's result: still running, succeeded with outputs, or failed with a reason."""

    state: str
    outputs: dict[str, OutputValue] | None = None
    failure: str | None = None

    @property
    def running(self) -> bool:
        return self.outputs is None and self.failure is None


class PollingSettings(HandlerSettings):
    """Settings every job handler has."""

    poll_interval: Annotated[
        float,
        Field(
            default=30.0,
            ge=1.0,
            le=MAX_POLL_INTERVAL,
            description="Seconds between two polls of a running job (each poll is a durable Retry continuation).",
        ),
    ]
    max_wait: Annotated[
        float,
        Field(
            default=0.0,
            ge=0.0,
            le=MAX_WAIT_LIMIT,
            description="Seconds after which a job that still runs is stopped and the step failed; 0 = no limit.",
        ),
    ]


class PollingJobHandler(ABC):
    """The start-then-poll skeleton; subclasses say how to find, start, poll and stop their kind of job."""

    #: What the job is called in failure reasons, e.g. "Glue job".
    label: str

    def __init__(self, settings: PollingSettings) -> None:
        self.settings = settings

    async def __call__(self, context: CallbackContext) -> dict[str, OutputValue] | Retry:
        ref = JobRef.load(context.state)
        async with aws_errors(self.label):
            if ref is None:
                ref = await self.launch(context)
            else:
                await self.verify(ref, context)
            status = await self.poll(ref, context)
            if status.running and self._overdue(ref):
                await self.stop(ref)
                waited = round(time.time() - ref.started)
                raise Fail(
                    f"{self.label} {ref.id} still {status.state} after {waited} s "
                    f"({self.settings.env_name('max_wait')}={self.settings.max_wait:g}); it was asked to stop"
                )
        if status.failure is not None:
            raise Fail(status.failure)
        if status.outputs is not None:
            return status.outputs
        return Retry(self.settings.poll_interval, ref.dump())

    async def on_stop(self, context: CallbackContext) -> None:
        """Stop this step's job if it can be found and still runs; the job is found from the token, not the state.

        A state the hook gets (the newest one the step knew) is checked all the same: one that names another job fails.
        """
        claimed = JobRef.load(context.state)
        if claimed is not None:
            await self.verify(claimed, context)
        ref = await self.find(context)
        if ref is not None:
            await self.stop(ref)

    def _overdue(self, ref: JobRef) -> bool:
        return self.settings.max_wait > 0 and time.time() - ref.started > self.settings.max_wait

    @abstractmethod
    async def launch(self, context: CallbackContext) -> JobRef:
        """Find the job this step already started, else start it. Must not start a second one."""

    @abstractmethod
    async def find(self, context: CallbackContext) -> JobRef | None:
        """This step's job if it still runs, derived from the token alone."""

    @abstractmethod
    async def verify(self, ref: JobRef, context: CallbackContext) -> None:
        """:class:`Fail` unless ``ref`` (from a continuation's state) is this step's job; must not touch another job."""

    @abstractmethod
    async def poll(self, ref: JobRef, context: CallbackContext) -> JobStatus:
        """The job's current status."""

    @abstractmethod
    async def stop(self, ref: JobRef) -> None:
        """Ask the service to stop the job."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the handler's AWS client."""
