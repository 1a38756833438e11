"""In-memory fakes of SQS and SageMaker for property-based tests of the delivery core: no server, no network.

* :class:`FakeClock` — a settable epoch clock (``now``), callable like ``time.time``; :meth:`FakeClock.sleep` waits
  until :meth:`FakeClock.advance` moves it far enough.
* :class:`Ticks` — a strictly increasing counter: a time stamp for events (which came first) and, as the
  ``StepResolver``'s clock, a clock under which every look-up is younger than any earlier one.
* :class:`MemoryQueue` — :class:`worker.memory.MemoryQueue` with scripted faults and kill -9.
* :class:`FakeSageMaker` — pipeline executions with callback steps, the answer, list and describe calls.

Kill -9 is modelled by :class:`Process`: every call runs in the context of the replica incarnation that made it
(:data:`CURRENT_PROCESS`); once that incarnation is dead its calls no longer reach the service, and a reply still on
its way is lost (the call raises ``CancelledError`` instead of returning).

Semantics these fakes assume, where AWS leaves room (each one chosen to be the harder case for the worker):

* Every call is a request and a reply: the caller yields once before the service applies it and once after, so a
  kill or a cancellation can land between sending and applying, or between applying and replying.
* ``ReceiveMessage`` returns the visible messages oldest first, rotated by :attr:`MemoryQueue.pick` (SQS promises no
  order), hides each for the visibility timeout and hands out a new receipt handle per receive.
* ``ChangeMessageVisibility`` needs the message's *current* receipt handle and the message still in flight
  (hidden): an older handle gets ``ReceiptHandleIsInvalid``, a message already visible again ``MessageNotInflight``,
  both sender faults. A visibility reaching past 12 hours after the receive is ``InvalidParameterValue``.
* ``DeleteMessage`` accepts the latest or any earlier receipt handle of the message, and deleting a message already
  deleted succeeds (SQS documents that a stale handle's delete "succeeds but may not delete": this fake always
  deletes, the case in which a replica still working on a redelivery loses its message under it). A handle never
  issued is ``ReceiptHandleIsInvalid``.
* ``SendMessage`` has no idempotency: a send whose reply is lost and that is sent again leaves two messages.
* ``SendPipelineExecutionStepSuccess`` / ``Failure``: the first answer to a waiting step (``Executing`` or
  ``Stopping``) applies — an ``Executing`` step becomes ``Succeeded`` or ``Failed``, a ``Stopping`` one ``Stopped``.
  The identical request again (same ClientRequestToken and parameters) is a replay and succeeds; any other request
  to an answered step is ``ConflictException``; an unknown token is ``ResourceNotFound``.
* ``StopPipelineExecution`` (:meth:`FakeSageMaker.stop`) turns every ``Executing`` callback step of the execution
  ``Stopping`` and sends, for each, a message like the ``Executing`` one with ``"status": "Stopping"``.
* ``ListPipelineExecutionSteps`` is read-after-write consistent: a listing shows every stop and answer applied before
  it (the real API does not promise this; a lagging listing would let a handler start on a step already stopped).

Faults are scripted per operation with ``fail_next(operation, kind)`` and hit the next call of that operation:

* ``"error"`` — a transient ``ClientError`` (``InternalError``/``InternalFailure``, HTTP 500); nothing applied.
* ``"lost_reply"`` — applied, then the same error: the caller cannot tell it from ``"error"``.
* ``"entry"`` (queue batch operations and delete) — a per-entry ``BatchEntryError("InternalError",
  sender_fault=False)``; nothing applied.
* ``"throttle"`` (SageMaker) — ``ThrottlingException``, HTTP 400; nothing applied.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import json
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from callback_worker.worker import memory
from callback_worker.worker.queue import BatchEntryError, ReceivedMessage

T = TypeVar("T")

ACCOUNT_ARN = "arn:aws:sagemaker:us-east-1:123456789012"
#: The signing key the simulated replicas share (``worker.signing``; deploy/ ships one).
TEST_SIGNING_KEY = b"test-signing-key-shared-by-every-replica"


def client_error(code: str, status: int, operation: str, message: str = "injected by the test") -> ClientError:
    """A botocore ``ClientError`` as the service would raise it."""
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


class FakeClock:
    """Epoch seconds that move only when told to; ``clock()`` reads them."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:
        self.start = self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on and wake every :meth:`sleep` whose time has come (they run when the loop next runs)."""
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds`` on."""
        if seconds <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future


class Ticks:
    """A strictly increasing count; every call returns the next number."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> float:
        self.value += 1
        return float(self.value)


@dataclass(eq=False)
class Process:
    """One incarnation of one replica. Calls made in its context (:data:`CURRENT_PROCESS`) stop reaching the
    services once it is killed."""

    name: str
    alive: bool = True
    draining: bool = False
    """A graceful shutdown is cancelling its deliveries (as the runtime does once the grace period is over)."""
    tasks: dict[asyncio.Task[Any], None] = field(default_factory=dict)
    """Every task started in its context, in order (for kill -9)."""


#: The replica incarnation on whose behalf the current task calls the services (None: the test itself).
CURRENT_PROCESS: ContextVar[Process | None] = ContextVar("fake_current_process", default=None)
#: The receipt handle of the delivery the current task is handling, if any (who sent a message).
CURRENT_DELIVERY: ContextVar[str | None] = ContextVar("fake_current_delivery", default=None)


def _check_alive() -> None:
    process = CURRENT_PROCESS.get()
    if process is not None and not process.alive:
        raise asyncio.CancelledError  # the process is gone: no request leaves it, no reply reaches it


async def _network() -> None:
    """One hop of a request or a reply: other tasks run meanwhile, and a kill may land."""
    _check_alive()
    await asyncio.sleep(0)
    _check_alive()


class Faults:
    """Scripted faults, per operation, each for the next call of that operation."""

    def __init__(self, kinds: dict[str, frozenset[str]]) -> None:
        self.kinds = kinds
        self.pending: dict[str, deque[str]] = {operation: deque() for operation in kinds}
        self.injected: list[tuple[str, str]] = []

    def fail_next(self, operation: str, kind: str) -> None:
        if kind not in self.kinds[operation]:
            raise ValueError(f"{operation} cannot fail with {kind!r}; it can with {sorted(self.kinds[operation])}")
        self.pending[operation].append(kind)

    def take(self, operation: str) -> str | None:
        queue = self.pending[operation]
        if not queue:
            return None
        kind = queue.popleft()
        self.injected.append((operation, kind))
        return kind

    def clear(self) -> None:
        for queue in self.pending.values():
            queue.clear()


# -- SQS ---------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class StoredMessage(memory.StoredMessage):
    """A :class:`worker.memory.StoredMessage` that also records who sent it and what befell its sends and deletes."""

    sender: str | None = None
    """Receipt handle of the delivery whose task sent it (None: SageMaker, or the test)."""
    reply_lost: bool = False
    """The send was applied but the sender was told it failed (``lost_reply``)."""
    sent_while_held: bool = False
    """Sent by a delivery whose receipt of its own message was still in flight (its lease held) at that moment."""
    failed_deletes: list[str] = field(default_factory=list)
    """Receipt handles whose delete of this message failed (an injected ``error`` or ``entry`` fault)."""

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


QUEUE_FAULTS = {
    "receive": frozenset({"error", "lost_reply"}),
    "delete": frozenset({"error", "lost_reply", "entry"}),
    "set_visibility": frozenset({"error", "lost_reply", "entry"}),
    "set_visibility_many": frozenset({"error", "lost_reply", "entry"}),
    "send": frozenset({"error", "lost_reply"}),
}


class MemoryQueue(memory.MemoryQueue):
    """:class:`worker.memory.MemoryQueue` with scripted faults, kill -9 (every call is a request and a reply of the
    calling replica's incarnation) and a record of senders."""

    messages: dict[str, StoredMessage]  # type: ignore[assignment]

    def __init__(self, clock: Callable[[], float], *, visibility_timeout: int = 30, wait_time: int = 0) -> None:
        super().__init__(clock, visibility_timeout=visibility_timeout, wait_time=wait_time)
        self.faults = Faults(dict(QUEUE_FAULTS))
        self.on_send: Callable[[StoredMessage], None] | None = None
        """Called (synchronously) with each message the moment a send applies it."""
        self.on_delete: Callable[[StoredMessage], None] | None = None
        """Called (synchronously) with each message the moment a delete applies to it (the first delete only)."""

    def fail_next(self, operation: str, kind: str) -> None:
        """Make the next ``operation`` call (``receive``, ``delete``, ``set_visibility``, ``set_visibility_many``,
        ``send``) fail with ``kind`` (``error``, ``lost_reply``, ``entry``; see the module docstring)."""
        self.faults.fail_next(operation, kind)

    def put(self, body: str, delay: float = 0.0, sender: str | None = None) -> StoredMessage:
        number = next(self._ids)
        now = self.clock()
        message = StoredMessage(f"m{number:05d}", body, now, now + delay, number, sender=sender)
        self.messages[message.message_id] = message
        return message

    def live_messages(self) -> list[StoredMessage]:
        """:meth:`live`, with what this queue records of each message."""
        return [message for message in self.messages.values() if not message.deleted]

    async def receive(self, max_messages: int) -> list[ReceivedMessage]:
        fault = await self._request("receive", "ReceiveMessage")
        received = self.apply_receive(max_messages)
        return await self._reply(fault, "ReceiveMessage", received)

    async def delete(self, receipt_handle: str) -> None:
        await _network()
        fault = self.faults.take("delete")
        target = self._by_handle.get(receipt_handle)
        if target is not None and fault in ("error", "entry"):
            self.messages[target.message_id].failed_deletes.append(receipt_handle)
        self._fail_request(fault, "DeleteMessageBatch")
        already = target is not None and target.deleted
        message = self.messages[self.apply_delete(receipt_handle).message_id]
        if not already and self.on_delete is not None:
            self.on_delete(message)
        await self._reply(fault, "DeleteMessageBatch", None)

    async def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        fault = await self._request("set_visibility", "ChangeMessageVisibilityBatch")
        error = self.apply_change(receipt_handle, seconds)
        await self._reply(fault, "ChangeMessageVisibilityBatch", None)
        if error is not None:
            raise error

    async def set_visibility_many(self, changes: Sequence[tuple[str, int]]) -> list[BatchEntryError | None]:
        await _network()
        fault = self.faults.take("set_visibility_many")
        self._fail_request(fault, "ChangeMessageVisibilityBatch", entries_fail=False)
        if fault == "entry":
            errors: list[BatchEntryError | None] = [_entry_fault() for _ in changes]
        else:
            errors = [self.apply_change(handle, seconds) for handle, seconds in changes]
        return await self._reply(fault, "ChangeMessageVisibilityBatch", errors)

    async def send(self, body: str, delay: int = 0) -> str:
        fault = await self._request("send", "SendMessage")
        if len(body.encode()) > self.max_message_bytes:
            raise client_error("InvalidParameterValue", 400, "SendMessage", "message too long")
        sender = CURRENT_DELIVERY.get()
        held = self.holds(sender)
        message = self.put(body, delay=max(0, min(delay, 900)), sender=sender)
        message.sent_while_held = held
        if self.on_send is not None:
            self.on_send(message)
        if fault == "lost_reply":
            message.reply_lost = True
        return await self._reply(fault, "SendMessage", message.message_id)

    async def _request(self, operation: str, api: str) -> str | None:
        """The request reaches the queue; the fault scripted for it, if any, is taken now."""
        await _network()
        fault = self.faults.take(operation)
        self._fail_request(fault, api)
        return fault

    def _fail_request(self, fault: str | None, api: str, *, entries_fail: bool = True) -> None:
        """Raise the ``error`` (nothing applied) or the per-entry fault scripted for this request."""
        if fault == "error":
            self.reachable = False
            raise client_error("InternalError", 500, api)
        if fault == "entry" and entries_fail:
            raise _entry_fault()

    async def _reply(self, fault: str | None, api: str, result: T) -> T:
        """The reply travels back: lost (``lost_reply``, after the call was applied) or delivered."""
        if fault == "lost_reply":
            self.reachable = False
            raise client_error("InternalError", 500, api)
        await _network()
        self.reachable = True
        return result


def _entry_fault() -> BatchEntryError:
    return BatchEntryError("InternalError", "injected by the test", sender_fault=False)


# -- SageMaker -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer request that went through (the first one applied, or a replay of it)."""

    kind: str
    """``success`` or ``failure``."""
    client_request_token: str
    outputs: tuple[tuple[str, str], ...] = ()
    reason: str | None = None
    tick: float = 0.0
    replay: bool = False

    @property
    def request(self) -> tuple[str, str, tuple[tuple[str, str], ...], str | None]:
        """What makes two requests the same request."""
        return (self.kind, self.client_request_token, self.outputs, self.reason)


@dataclass(eq=False)
class CallbackStep:
    token: str
    name: str
    execution_arn: str
    status: str = "Executing"
    outcome: Answer | None = None
    left_executing: float | None = None
    """Tick at which the step stopped waiting for a first answer (stopped, or answered)."""
    applied: list[Answer] = field(default_factory=list)
    """Every answer that went through: the applied one, then its replays."""
    conflicts: list[Answer] = field(default_factory=list)
    """Different answers refused with ConflictException."""


@dataclass(eq=False)
class PipelineExecution:
    arn: str
    status: str = "Executing"
    tokens: list[str] = field(default_factory=list)
    stopped_at: float | None = None
    """Tick of :meth:`FakeSageMaker.stop` (None: never stopped)."""


SAGEMAKER_FAULTS = {
    "answer": frozenset({"error", "throttle", "lost_reply"}),
    "list": frozenset({"error", "throttle"}),
    "describe": frozenset({"error", "throttle"}),
}


class FakeSageMaker:
    """Pipeline executions with callback steps; sends their messages to ``queue``."""

    def __init__(self, queue: MemoryQueue, ticks: Callable[[], float], pipeline: str = "demo") -> None:
        self.queue = queue
        self.ticks = ticks
        self.pipeline = pipeline
        self.executions: dict[str, PipelineExecution] = {}
        self.steps: dict[str, CallbackStep] = {}
        self.faults = Faults(dict(SAGEMAKER_FAULTS))
        self.calls: dict[str, int] = {}

    # -- what the test uses ------------------------------------------------------------------------------------------

    def fail_next(self, operation: str, kind: str) -> None:
        """Make the next ``operation`` call (``answer``: success or failure; ``list``; ``describe``) fail with
        ``kind`` (``error``, ``throttle``, ``lost_reply`` for answers; see the module docstring)."""
        self.faults.fail_next(operation, kind)

    def start_execution(self) -> str:
        arn = f"{ACCOUNT_ARN}:pipeline/{self.pipeline}/execution/exec{len(self.executions) + 1:04d}"
        self.executions[arn] = PipelineExecution(arn)
        return arn

    def start_step(self, execution_arn: str, arguments: dict[str, Any] | None = None) -> str:
        """Start a callback step in the execution: a new token, and its Executing message in the queue."""
        execution = self.executions[execution_arn]
        if execution.status != "Executing":
            raise ValueError(f"execution {execution_arn} is {execution.status}")
        token = f"T{len(self.steps) + 1:09d}"
        self.steps[token] = CallbackStep(token, f"Callback{len(execution.tokens) + 1}", execution_arn)
        execution.tokens.append(token)
        self.queue.put(self._body(token, arguments or {}, "Executing"))
        return token

    def stop(self, execution_arn: str) -> list[str]:
        """Stop the execution: its waiting callback steps turn Stopping, each with a Stopping message sent."""
        execution = self.executions[execution_arn]
        execution.status, execution.stopped_at = "Stopping", self.ticks()
        stopping = [token for token in execution.tokens if self.steps[token].status == "Executing"]
        for token in stopping:
            step = self.steps[token]
            step.status, step.left_executing = "Stopping", self.ticks()
            self.queue.put(self._body(token, {}, "Stopping"))
        if not stopping:
            execution.status = "Stopped"
        return stopping

    def _body(self, token: str, arguments: dict[str, Any], status: str) -> str:
        arn = self.steps[token].execution_arn
        return json.dumps({"token": token, "pipelineExecutionArn": arn, "arguments": arguments, "status": status})

    # -- the client interface ----------------------------------------------------------------------------------------

    async def send_pipeline_execution_step_success(self, **request: Any) -> dict[str, Any]:
        outputs = tuple((item["Name"], item["Value"]) for item in request.get("OutputParameters", []))
        answer = Answer("success", request["ClientRequestToken"], outputs=outputs)
        return await self._answer("SendPipelineExecutionStepSuccess", request["CallbackToken"], answer)

    async def send_pipeline_execution_step_failure(self, **request: Any) -> dict[str, Any]:
        answer = Answer("failure", request["ClientRequestToken"], reason=request.get("FailureReason", ""))
        return await self._answer("SendPipelineExecutionStepFailure", request["CallbackToken"], answer)

    async def list_pipeline_execution_steps(self, **request: Any) -> dict[str, Any]:
        await self._arrive("list", "ListPipelineExecutionSteps")
        execution = self.executions.get(request["PipelineExecutionArn"])
        if execution is None:
            raise client_error("ResourceNotFound", 400, "ListPipelineExecutionSteps", "no such execution")
        start = int(request.get("NextToken") or 0)
        size = int(request.get("MaxResults", 100))
        tokens = list(reversed(execution.tokens))  # newest first, as the service lists them
        page = [
            {
                "StepName": self.steps[token].name,
                "StepStatus": self.steps[token].status,
                "Metadata": {"Callback": {"CallbackToken": token}},
            }
            for token in tokens[start : start + size]
        ]
        response: dict[str, Any] = {"PipelineExecutionSteps": page}
        if start + size < len(tokens):
            response["NextToken"] = str(start + size)
        await _network()
        return response

    async def describe_pipeline_execution(self, **request: Any) -> dict[str, Any]:
        await self._arrive("describe", "DescribePipelineExecution")
        execution = self.executions.get(request["PipelineExecutionArn"])
        if execution is None:
            raise client_error("ResourceNotFound", 400, "DescribePipelineExecution", "no such execution")
        response = {
            "PipelineExecutionArn": execution.arn,
            "PipelineExecutionStatus": execution.status,
            "PipelineExperimentConfig": {"ExperimentName": self.pipeline, "TrialName": execution.arn[-8:]},
        }
        await _network()
        return response

    # -- internals -----------------------------------------------------------------------------------------------------

    async def _arrive(self, operation: str, name: str) -> str | None:
        """The request's trip to the service and its scripted fault (raised here unless applied first)."""
        await _network()
        self.calls[name] = self.calls.get(name, 0) + 1
        fault = self.faults.take(operation)
        if fault == "throttle":
            raise client_error("ThrottlingException", 400, name, "Rate exceeded")
        if fault == "error":
            raise client_error("InternalFailure", 500, name)
        return fault

    async def _answer(self, name: str, token: str, answer: Answer) -> dict[str, Any]:
        fault = await self._arrive("answer", name)
        step = self.steps.get(token)
        if step is None:
            raise client_error("ResourceNotFound", 400, name, "no such callback token")
        answer = Answer(answer.kind, answer.client_request_token, answer.outputs, answer.reason, self.ticks())
        if step.outcome is None:
            step.outcome = answer
            step.applied.append(answer)
            if step.status == "Stopping":
                step.status = "Stopped"
            else:
                step.status = "Succeeded" if answer.kind == "success" else "Failed"
                step.left_executing = answer.tick
            self._settle_execution(step.execution_arn)
        elif answer.request == step.outcome.request:
            step.applied.append(Answer(*answer.request, tick=answer.tick, replay=True))
        else:
            step.conflicts.append(answer)
            raise client_error("ConflictException", 400, name, "the step already has an outcome")
        if fault == "lost_reply":
            raise client_error("InternalFailure", 500, name)
        await _network()
        return {"PipelineExecutionArn": step.execution_arn}

    def _settle_execution(self, execution_arn: str) -> None:
        execution = self.executions[execution_arn]
        if execution.status == "Stopping" and all(self.steps[t].status != "Stopping" for t in execution.tokens):
            execution.status = "Stopped"
