"""What SageMaker says about a token's step: its name, its status, and the execution's experiment config.

The SQS message names neither the step nor whether it still waits. The worker asks ``ListPipelineExecutionSteps``
(every page) for the step whose ``Metadata.Callback.CallbackToken`` is the token — to verify the token
(``CALLBACK_WORKER_VERIFY_TOKENS``) and to name the step (``CALLBACK_WORKER_STEP_CONTEXT``) — and, for step context,
``DescribePipelineExecution`` for ``PipelineExperimentConfig``, once per execution. Listings are cached per
execution and numbered in the order they start: a delivery verified against the cache uses only a listing that
started after it was received (:meth:`StepResolver.mark`), so no handler starts on what an older listing said —
across replicas, a step stopped and answered elsewhere before this delivery arrived is seen as such. A token not in
the cached listing is listed again. Concurrent look-ups for one execution share one request.

Errors are classed by :mod:`worker.taxonomy`. Throttling and outages are retried for as long as they last; any other
error is retried a few times, then :class:`LookupFailed` says the look-up was inconclusive. Only ``ResourceNotFound``
on the *first* page (or from describe) says the execution is gone; an error on a later page says nothing.

Cost: one ``ListPipelineExecutionSteps`` call (one per 100 steps) per execution per receive of its messages.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callback_worker.worker.errors import WorkerError
from callback_worker.worker.events import NO_EVENTS, Events, StepLookup
from callback_worker.worker.logs import get_logger
from callback_worker.worker.retrying import STEP_LOOKUP_BACKOFF
from callback_worker.worker.sagemaker_calls import SageMakerCalls
from callback_worker.worker.taxonomy import ErrorClass, classify, error_code

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

log = get_logger("worker.step_context")

#: Executions whose steps are kept in memory.
CACHE_SIZE = 1024
#: ListPipelineExecutionSteps' largest page.
PAGE_SIZE = 100
#: Step statuses in which a callback step still waits for its answer.
WAITING_STATUSES = frozenset({"Starting", "Executing"})
#: Tries of a look-up that SageMaker answers with an error that is neither throttling nor an outage.
LOOKUP_TRIES = 3
_LIST = "ListPipelineExecutionSteps"
_DESCRIBE = "DescribePipelineExecution"


class LookupFailed(WorkerError):
    """SageMaker answered the look-up with an error that says nothing final (access denied, an expired token, a
    ValidationException, a failed page): the token can be neither confirmed nor denied."""

    def __init__(self, code: str) -> None:
        super().__init__(f"ListPipelineExecutionSteps failed: {code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class NotFound:
    """SageMaker's listing has no step for the token."""

    execution_gone: bool
    """SageMaker definitively does not know the execution (else: the token is not listed, perhaps not *yet*)."""


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What SageMaker says about the step of one token."""

    step_name: str | None = None
    experiment_name: str | None = None
    trial_name: str | None = None
    status: str | None = None
    """The step's ``StepStatus`` (None when not looked up)."""

    @property
    def waiting(self) -> bool:
        """The step still waits for an answer (or its status was not looked up)."""
        return self.status is None or self.status in WAITING_STATUSES


@dataclass
class _Execution:
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Token → (step name, step status)."""
    listed: int = 0
    """The number of the last listing (0: never listed); listings are numbered as they start."""
    missing: bool = False
    """SageMaker does not know the execution."""
    experiment: dict[str, str] = field(default_factory=dict)
    described: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StepResolver:
    """Looks tokens up in SageMaker's listing of their execution's steps, with a per-execution cache."""

    def __init__(
        self,
        client: SageMakerClient,
        *,
        describe: bool = True,
        cache_size: int = CACHE_SIZE,
        events: Events = NO_EVENTS,
        gate: SageMakerCalls | None = None,
    ) -> None:
        self.client = client
        self.events = events
        self.gate = gate or SageMakerCalls()
        """The door every SageMaker call of the process goes through (shared with the reporter)."""
        self.describe = describe
        self.cache_size = cache_size
        self._executions: OrderedDict[str, _Execution] = OrderedDict()
        self._started = 0
        """Listings started so far (each listing's number)."""

    def mark(self) -> int:
        """The number of the latest listing started: a look-up ``newer_than`` it uses only a later one."""
        return self._started

    async def resolve(self, execution_arn: str, token: str, newer_than: int | None = None) -> StepInfo | NotFound:
        """The step of ``token``, from a listing started after ``newer_than`` (a :meth:`mark`; None: any cached
        listing that has the token). Outages are retried until SageMaker answers; :class:`LookupFailed` if its
        answers stay inconclusive."""
        entry = self._entry(execution_arn)
        asked = self._started
        async with entry.lock:
            stale = entry.listed <= (newer_than if newer_than is not None else 0)
            missed = token not in entry.steps and entry.listed <= asked
            if stale or missed or (self.describe and not entry.described):
                await self._retrying(lambda: self._refresh(execution_arn, entry))
        return self._info(entry, token)

    async def statuses(self, execution_arn: str) -> dict[str, str]:
        """Token → step status for every callback step of the execution, from a fresh listing."""
        entry = self._entry(execution_arn)
        async with entry.lock:
            await self._retrying(lambda: self._list(execution_arn, entry))
        return {token: status for token, (_, status) in entry.steps.items()}

    def forget(self, execution_arn: str) -> None:
        """Drop the cached listing of an execution (one of its steps was just answered, or a Stopping message
        arrived for it: it has changed)."""
        entry = self._executions.get(execution_arn)
        if entry is not None:
            entry.listed = 0

    def _info(self, entry: _Execution, token: str) -> StepInfo | NotFound:
        step = entry.steps.get(token)
        if step is None:
            return NotFound(execution_gone=entry.missing)
        return StepInfo(step[0], entry.experiment.get("ExperimentName"), entry.experiment.get("TrialName"), step[1])

    def _entry(self, execution_arn: str) -> _Execution:
        entry = self._executions.get(execution_arn)
        if entry is None:
            entry = self._executions[execution_arn] = _Execution()
            while len(self._executions) > self.cache_size:
                self._executions.popitem(last=False)
        self._executions.move_to_end(execution_arn)
        return entry

    async def _refresh(self, execution_arn: str, entry: _Execution) -> None:
        if self.describe and not entry.described:
            self.events.publish(StepLookup(_DESCRIBE))
            described: Any
            try:
                described = await self.gate.call(
                    lambda: self.client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
                )
            except Exception as exc:
                if classify(_DESCRIBE, exc) is not ErrorClass.DEFINITIVE:
                    raise
                described = {}
            config: Any = described.get("PipelineExperimentConfig", {})
            entry.experiment = {key: str(value) for key, value in config.items()}
            entry.described = True
        await self._list(execution_arn, entry)

    async def _list(self, execution_arn: str, entry: _Execution) -> None:
        self._started += 1
        number = self._started
        steps: dict[str, tuple[str, str]] = {}
        arguments: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": PAGE_SIZE}
        while True:
            self.events.publish(StepLookup(_LIST))
            try:
                page = await self.gate.call(lambda: self.client.list_pipeline_execution_steps(**arguments))
            except Exception as exc:
                if "NextToken" in arguments or classify(_LIST, exc) is not ErrorClass.DEFINITIVE:
                    raise  # a later page's error says nothing about the execution
                entry.steps, entry.listed, entry.missing = {}, number, True
                return
            for step in page.get("PipelineExecutionSteps", []):
                callback_token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
                if callback_token:
                    steps[callback_token] = (step["StepName"], str(step.get("StepStatus", "")))
            if not page.get("NextToken"):
                break
            arguments["NextToken"] = page["NextToken"]
        entry.steps, entry.listed, entry.missing = steps, number, False

    async def _retrying(self, call: Callable[[], Any]) -> None:
        """``call()`` until it succeeds: outages and throttling for as long as they last, any other error
        ``LOOKUP_TRIES`` times (then :class:`LookupFailed`)."""
        backoff = STEP_LOOKUP_BACKOFF.start()
        refused = 0
        while True:
            try:
                await call()
            except Exception as exc:
                kind = classify(_LIST, exc)
                code = error_code(exc)
                if not kind.transient:
                    kind = ErrorClass.UNCERTAIN  # ResourceNotFound on a later page: inconclusive
                if kind is ErrorClass.UNCERTAIN:
                    refused += 1
                    if refused >= LOOKUP_TRIES:
                        raise LookupFailed(code) from exc
                log.warning("step look-up failed; retrying", error=f"{code}: {exc}", error_class=kind)
            else:
                return
            await backoff.sleep()
