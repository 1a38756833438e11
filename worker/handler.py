"""The public handler SDK: what a handler receives, returns and raises.

A handler is any callable taking a :class:`CallbackContext`, sync or async, that returns a mapping of output name to
``str | int | float | bool``. It may raise (or return) :class:`Fail` to answer the step with a Failure at once, or
:class:`Retry` to be called again later — durably, across restarts — with a new ``state``. Any other exception is
a crash: retried with backoff up to ``CALLBACK_WORKER_MAX_ATTEMPTS``, then reported as a Failure.

A handler object may also offer ``on_stop(context)`` (sync or async): it runs when the pipeline is being stopped,
after the handler's own task (if it runs on this replica) has been cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
OutputValue: TypeAlias = str | int | float | bool
Outputs: TypeAlias = Mapping[str, OutputValue]


@dataclass(frozen=True, slots=True)
class CallbackContext:
    """Everything a handler knows about the callback step it answers."""

    token: str = field(repr=False)
    """The callback token (10 alphanumerics). Never log it whole; the context's ``repr`` leaves it out."""
    pipeline_execution_arn: str
    pipeline_name: str
    """The pipeline segment of the execution ARN."""
    execution_id: str
    """The last segment of the execution ARN."""
    arguments: Mapping[str, JSONValue]
    """The step's arguments as the pipeline resolved them; JSON types kept."""
    handler_name: str
    """The name this message was routed to."""
    message_id: str
    """The SQS message id of the delivery being handled."""
    attempt: int = 1
    """1 on the first call; grows by one after each crash that is retried. Retry continuations do not count."""
    state: JSONValue = None
    """What the previous call passed to :class:`Retry`, or ``None`` on the first call."""
    continuations: int = 0
    """How many times this token's handler has asked to be called again."""
    step_name: str | None = None
    """The step's name, when ``CALLBACK_WORKER_STEP_CONTEXT`` is on (the message itself does not carry it)."""
    experiment_name: str | None = None
    """The execution's ``PipelineExperimentConfig.ExperimentName``, when step context is on."""
    trial_name: str | None = None
    """The execution's ``PipelineExperimentConfig.TrialName``, when step context is on."""


class Fail(Exception):
    """Answer the step with a Failure now, with ``reason`` (truncated to 256 characters if longer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(Exception):
    """Not done yet: call the handler again after ``delay`` seconds, with ``state``.

    The continuation is stored in the queue itself, so it survives restarts; it is not a failed attempt and never
    counts towards the queue's redrive policy. ``state`` must be JSON-serialisable and small (it travels in the SQS
    message body). Delays longer than the queue's 15-minute maximum are honoured by re-queueing in hops.
    """

    def __init__(self, delay: float, state: JSONValue = None) -> None:
        if delay < 0:
            raise ValueError(f"Retry delay must be >= 0 seconds, got {delay}")
        super().__init__(f"retry in {delay} s")
        self.delay = float(delay)
        self.state = state


HandlerResult: TypeAlias = Outputs | Retry


@runtime_checkable
class Handler(Protocol):
    """A callable that answers one callback step."""

    def __call__(self, context: CallbackContext, /) -> HandlerResult | Awaitable[HandlerResult]: ...


@runtime_checkable
class StopHook(Protocol):
    """A handler that wants to know when its pipeline is being stopped."""

    def on_stop(self, context: CallbackContext, /) -> Awaitable[None] | None: ...
