"""Step context from SageMaker's own APIs: which step a token belongs to, and the execution's experiment config.

The SQS message names neither. With ``CALLBACK_WORKER_STEP_CONTEXT`` on, the worker asks
``ListPipelineExecutionSteps`` (every page) for the step whose ``Metadata.Callback.CallbackToken`` is the token, and
``DescribePipelineExecution`` for ``PipelineExperimentConfig``, once per execution: later tokens of the same
execution are looked up in the cached listing, which is refreshed when a token is not in it yet (a step that started
after the listing). Concurrent lookups for one execution share one request.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from worker.logs import get_logger
from worker.retrying import Backoff, error_code, is_transient

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

log = get_logger("worker.step_context")

#: Executions whose steps are kept in memory.
CACHE_SIZE = 1024
#: ListPipelineExecutionSteps' largest page.
PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What SageMaker says about the step of one token."""

    step_name: str | None = None
    experiment_name: str | None = None
    trial_name: str | None = None


@dataclass
class _Execution:
    tokens: dict[str, str] = field(default_factory=dict)
    experiment: dict[str, str] = field(default_factory=dict)
    described: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StepResolver:
    """Resolves tokens to step names and experiment config, with a per-execution cache."""

    def __init__(self, client: SageMakerClient, cache_size: int = CACHE_SIZE) -> None:
        self.client = client
        self.cache_size = cache_size
        self._executions: OrderedDict[str, _Execution] = OrderedDict()
        self.calls = 0
        """API calls made so far (for tests and metrics)."""

    async def resolve(self, execution_arn: str, token: str) -> StepInfo:
        """The step and experiment of ``token``; fields are None where SageMaker does not say."""
        entry = self._entry(execution_arn)
        async with entry.lock:
            if token not in entry.tokens or not entry.described:
                await self._retrying(lambda: self._refresh(execution_arn, entry))
        return StepInfo(
            entry.tokens.get(token), entry.experiment.get("ExperimentName"), entry.experiment.get("TrialName")
        )

    def _entry(self, execution_arn: str) -> _Execution:
        entry = self._executions.get(execution_arn)
        if entry is None:
            entry = self._executions[execution_arn] = _Execution()
            while len(self._executions) > self.cache_size:
                self._executions.popitem(last=False)
        self._executions.move_to_end(execution_arn)
        return entry

    async def _refresh(self, execution_arn: str, entry: _Execution) -> None:
        if not entry.described:
            self.calls += 1
            described = await self.client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            config: Any = described.get("PipelineExperimentConfig", {})
            entry.experiment = {key: str(value) for key, value in config.items()}
            entry.described = True
        arguments: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": PAGE_SIZE}
        while True:
            self.calls += 1
            page = await self.client.list_pipeline_execution_steps(**arguments)
            for step in page.get("PipelineExecutionSteps", []):
                callback_token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
                if callback_token:
                    entry.tokens[callback_token] = step["StepName"]
            if not page.get("NextToken"):
                return
            arguments["NextToken"] = page["NextToken"]

    async def _retrying(self, call: Any) -> None:
        backoff = Backoff(base=0.2, cap=10.0)
        while True:
            try:
                await call()
            except ClientError as exc:
                if not is_transient(exc):
                    log.error(  # noqa: TRY400 - an expected AWS answer, not a bug: no traceback
                        "cannot read the step context; continuing without it", error=error_code(exc)
                    )
                    return
                log.warning("step context lookup failed; retrying", error=error_code(exc))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("step context lookup failed; retrying", error=f"{type(exc).__name__}: {exc}")
            else:
                return
            await backoff.sleep()
