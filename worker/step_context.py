"""What SageMaker says about a token's step: its name, its status, and the execution's experiment config.

The SQS message names neither the step nor whether it still waits. The worker asks ``ListPipelineExecutionSteps``
(every page) for the step whose ``Metadata.Callback.CallbackToken`` is the token — to verify the token
(``CALLBACK_WORKER_VERIFY_TOKENS``) and to name the step (``CALLBACK_WORKER_STEP_CONTEXT``) — and, for step context,
``DescribePipelineExecution`` for ``PipelineExperimentConfig``, once per execution. Listings are cached per
execution: a lookup uses a listing younger than its ``max_age``, and refreshes it when the token is not in it (a
step that started after the listing). Concurrent lookups for one execution share one request.

Cost: one ``ListPipelineExecutionSteps`` call (one per 100 steps) per execution per ``max_age`` in which its tokens
are looked up.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker.errors import WorkerError
from worker.events import NO_EVENTS, Events, StepLookup
from worker.logs import get_logger
from worker.retrying import STEP_LOOKUP_BACKOFF, error_code, is_transient

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

log = get_logger("worker.step_context")

#: Executions whose steps are kept in memory.
CACHE_SIZE = 1024
#: ListPipelineExecutionSteps' largest page.
PAGE_SIZE = 100
#: Step statuses in which a callback step still waits for its answer.
WAITING_STATUSES = frozenset({"Starting", "Executing"})
#: Errors meaning SageMaker does not know the execution (so not the token either).
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ValidationException"})


class LookupFailed(WorkerError):
    """SageMaker refused the look-up itself (for example AccessDenied): the token can be neither confirmed nor
    denied."""

    def __init__(self, code: str) -> None:
        super().__init__(f"ListPipelineExecutionSteps failed: {code}")
        self.code = code


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
    listed: float = -math.inf
    """Monotonic time the last listing started."""
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
        clock: Callable[[], float] = time.monotonic,
        events: Events = NO_EVENTS,
    ) -> None:
        self.client = client
        self.events = events
        self.describe = describe
        self.cache_size = cache_size
        self.clock = clock
        self._executions: OrderedDict[str, _Execution] = OrderedDict()

    async def resolve(self, execution_arn: str, token: str, max_age: float = math.inf) -> StepInfo | None:
        """The step of ``token``, from a listing at most ``max_age`` seconds old; None if SageMaker does not know
        the token. Transient errors are retried until SageMaker answers; :class:`LookupFailed` if it refuses."""
        entry = self._entry(execution_arn)
        asked = self.clock()
        async with entry.lock:
            stale = asked - entry.listed > max_age
            missed = token not in entry.steps and entry.listed < asked
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
        """Drop the cached listing of an execution (one of its steps was just answered: it has changed)."""
        entry = self._executions.get(execution_arn)
        if entry is not None:
            entry.listed = -math.inf

    def _info(self, entry: _Execution, token: str) -> StepInfo | None:
        step = entry.steps.get(token)
        if step is None:
            return None
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
            self.events.publish(StepLookup("DescribePipelineExecution"))
            described = await self.client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            config: Any = described.get("PipelineExperimentConfig", {})
            entry.experiment = {key: str(value) for key, value in config.items()}
            entry.described = True
        await self._list(execution_arn, entry)

    async def _list(self, execution_arn: str, entry: _Execution) -> None:
        started = self.clock()
        steps: dict[str, tuple[str, str]] = {}
        arguments: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": PAGE_SIZE}
        while True:
            self.events.publish(StepLookup("ListPipelineExecutionSteps"))
            page = await self.client.list_pipeline_execution_steps(**arguments)
            for step in page.get("PipelineExecutionSteps", []):
                callback_token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
                if callback_token:
                    steps[callback_token] = (step["StepName"], str(step.get("StepStatus", "")))
            if not page.get("NextToken"):
                break
            arguments["NextToken"] = page["NextToken"]
        entry.steps, entry.listed = steps, started

    async def _retrying(self, call: Callable[[], Any]) -> None:
        backoff = STEP_LOOKUP_BACKOFF.start()
        while True:
            try:
                await call()
            except ClientError as exc:
                code = error_code(exc)
                if code in NOT_FOUND_CODES:
                    return  # an execution SageMaker does not know: none of its tokens will be found
                if not is_transient(exc):
                    raise LookupFailed(code) from exc
                log.warning("step look-up failed; retrying", error=code)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("step look-up failed; retrying", error=f"{type(exc).__name__}: {exc}")
            else:
                return
            await backoff.sleep()
