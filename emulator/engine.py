"""Running executions: the step DAG, branches, answers, stopping and retrying.

Life of a step here, as in the service (how each kind runs once started: :mod:`emulator.runners`):

1. A step starts when every step it depends on has succeeded and, for a step on a Condition step's branch,
   the Condition step's outcome chose that branch: steps on the branch not taken never start (they are not
   listed). A callback step gets a fresh token and its message; its status is ``Starting``, then
   ``Executing`` once its queue took the message.
2. ``SendPipelineExecutionStepSuccess``: each declared output given must parse as its declared type; otherwise
   the step fails with a reason naming the output. A declared output left out has no value (a step reading it
   fails, naming it); outputs the step does not declare are recorded and otherwise ignored.
   ``SendPipelineExecutionStepFailure``: the step fails with the given reason.
3. ``StopPipelineExecution``: the execution is ``Stopping``; every running callback step is ``Stopping`` and
   gets a second message with the same token and arguments and ``"status": "Stopping"``; once answered
   (either way) it is ``Stopped``; other running steps are ``Stopped`` at once; steps not started never start.
4. ``RetryPipelineExecution`` of a ``Failed`` execution: its failed steps start again (callback steps with a
   new token and message, ``AttemptCount`` one more), then the steps after them.

After a step fails no further step starts; the execution becomes ``Failed`` once no step is still running,
its ``FailureReason`` always ``Step failure: One or multiple steps failed.`` (the step keeps its own reason). It is
``Succeeded`` when nothing runs and nothing more can start, and ``Stopped`` when stopping and nothing runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from callback_worker.emulator.arns import Partition, new_callback_token, new_execution_id
from callback_worker.emulator.cache import find_cached
from callback_worker.emulator.context import ExecutionContext, check_outputs
from callback_worker.emulator.delivery import Background
from callback_worker.emulator.errors import ConflictError, ResourceLimitExceededError
from callback_worker.emulator.foreach import ForEachDriver, child_name
from callback_worker.emulator.runners import StepRunner
from callback_worker.emulator.s3 import ObjectReader
from callback_worker.emulator.selective import Selection
from callback_worker.emulator.sqs import MessageSender, StepMessage
from callback_worker.emulator.state import (
    Answer,
    Execution,
    ExecutionStatus,
    Iteration,
    Pipeline,
    PipelineVersion,
    StepRun,
    StepStatus,
    Store,
)
from callback_worker.emulator.steps import StepKind, StepSpec
from callback_worker.emulator.stubs import StubConfig
from callback_worker.emulator.values import Scalar, to_text

logger = logging.getLogger("emulator")

#: FailureReason of a step holds at most 1024 characters.
_STEP_REASON_LIMIT = 1024
#: The execution's FailureReason whatever step failed it (a Fail step, a callback answered with a failure, a
#: stubbed or ForEach step): the reason stays on the failed step. The wording is the service's, as asserted by the
#: SageMaker Python SDK's own integration tests (tests/integ/sagemaker/workflow/test_fail_steps.py: the step's
#: FailureReason is the Fail step's message, ListPipelineExecutions' PipelineExecutionFailureReason holds
#: "Step failure: One or multiple steps failed") and as DescribePipelineExecution answers print it, period included.
EXECUTION_FAILURE_REASON = "Step failure: One or multiple steps failed."


@dataclass(frozen=True)
class ExecutionRequest:
    """What ``StartPipelineExecution`` asks for."""

    pipeline: Pipeline
    parameters: dict[str, Scalar]
    display_name: str | None
    description: str | None
    parallelism: int | None
    client_request_token: str
    version: PipelineVersion | None = None
    mlflow_experiment_name: str | None = None
    selection: Selection | None = None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Engine:
    """Runs executions: starts steps, applies answers, stops and retries."""

    def __init__(
        self,
        store: Store,
        partition: Partition,
        sender: MessageSender,
        *,
        max_running_executions: int | None = None,
        clock: Callable[[], float] = time.time,
        stubs: StubConfig | None = None,
        reader: ObjectReader | None = None,
    ) -> None:
        self.store = store
        self.partition = partition
        self.max_running_executions = max_running_executions
        self.clock = clock
        self.stubs = stubs or StubConfig()
        self.background = Background(sender)
        account_arn = f"arn:aws:sagemaker:{partition.region}:{partition.account}"
        self._runner = StepRunner(
            self.background, self.stubs, reader, account_arn, clock, self._finish, self._advance, self._cached
        )
        self._for_each = ForEachDriver(self._start_child, self._finish, clock)

    @property
    def sent(self) -> list[StepMessage]:
        """Every message the queues accepted, in order."""
        return self.background.sent

    @property
    def send_failures(self) -> list[tuple[StepMessage, str]]:
        """Every message a queue refused: the message and the error text."""
        return self.background.send_failures

    # --- executions -------------------------------------------------------------------------------------

    def start(self, request: ExecutionRequest) -> Execution:
        """Create an execution and start the steps that depend on nothing; returns it ``Executing``."""
        self._check_running_limit()
        pipeline = request.pipeline
        now = self.clock()
        execution_id = self._unique_execution_id(pipeline)
        version = request.version or pipeline.version
        execution = Execution(
            arn=self.partition.execution_arn(pipeline.name, execution_id),
            id=execution_id,
            pipeline=pipeline,
            version=version,
            display_name=request.display_name or f"execution-{int(now * 1000)}",
            description=request.description,
            parameters=request.parameters,
            parallelism=request.parallelism or pipeline.parallelism,
            creation_time=now,
            client_request_token=request.client_request_token,
            seq=self.store.next_seq(),
            last_modified_time=now,
        )
        execution.experiment = self._experiment(execution, now)
        execution.mlflow = self._mlflow(execution, now, request.mlflow_experiment_name)
        if request.selection is not None:  # see emulator.selective
            execution.selective_config, execution.selected = request.selection.config, request.selection.selected
            for taken in request.selection.taken:
                execution.steps[taken.spec.name] = replace(taken, seq=self.store.next_seq())
        self.store.executions[execution.arn] = execution
        self.store.started[(pipeline.arn, request.client_request_token)] = execution
        pipeline.last_run_time = now
        version.last_execution_arn = execution.arn
        logger.info("execution %s of pipeline %s started", execution.arn, pipeline.name)
        self._advance(execution)
        return execution

    def stop(self, execution: Execution, client_request_token: str) -> None:
        """Stop ``execution``: ``Stopping`` now, ``Stopped`` once no step runs.

        Stopping a stopping execution again changes nothing. Raises :class:`ConflictError` for a finished
        execution, unless this repeats the request (same ``ClientRequestToken``) that stopped it.
        """
        if execution.finished:
            if execution.stop_request_token == client_request_token:
                return
            raise ConflictError(
                f"Pipeline execution {execution.arn} is already {execution.status.value} and cannot be stopped"
            )
        if execution.status is ExecutionStatus.STOPPING:
            return
        execution.status = ExecutionStatus.STOPPING
        execution.stop_request_token = client_request_token
        execution.last_modified_time = self.clock()
        for run in execution.running_steps():
            self._stop_step(execution, run)
        logger.info("execution %s stopping", execution.arn)
        self._advance(execution)

    def _stop_step(self, execution: Execution, run: StepRun) -> None:
        if run.spec.kind is StepKind.FOR_EACH and run.items is not None:
            run.status = StepStatus.STOPPING  # Stopped once its children are
            return
        if run.spec.kind is not StepKind.CALLBACK:
            self._finish(execution, run, StepStatus.STOPPED)
            return
        delivered = run.status is StepStatus.EXECUTING
        run.status = StepStatus.STOPPING
        if delivered:
            # A step still Starting gets its Stopping message right after its Executing one (see runners).
            self.background.spawn(self._runner.send_stopping(execution, run))

    def retry(self, execution: Execution, client_request_token: str, parallelism: int | None) -> None:
        """Re-run the failed steps of a ``Failed`` execution (a repeated request changes nothing).

        Raises :class:`ConflictError` when the execution is not ``Failed``.
        """
        if client_request_token in execution.retry_tokens:
            return
        if execution.status is not ExecutionStatus.FAILED:
            raise ConflictError(
                f"Pipeline execution {execution.arn} is {execution.status.value}; "
                "only a Failed execution can be retried"
            )
        self._check_running_limit()
        execution.retry_tokens.add(client_request_token)
        for run in execution.failed_steps():
            execution.attempts[run.spec.name] = run.attempt
            del execution.steps[run.spec.name]
        execution.status = ExecutionStatus.EXECUTING
        execution.failure_reason = None
        execution.parallelism = parallelism or execution.parallelism
        execution.last_modified_time = self.clock()
        logger.info("execution %s retrying", execution.arn)
        self._advance(execution)

    # --- answers ----------------------------------------------------------------------------------------

    def succeed(self, execution: Execution, run: StepRun, outputs: list[dict[str, str]], answer: Answer) -> None:
        """Apply a ``SendPipelineExecutionStepSuccess`` to a running step."""
        run.answer = answer
        run.outputs = outputs
        if run.status is StepStatus.STOPPING:
            self._finish(execution, run, StepStatus.STOPPED)
            return
        typed, problems = check_outputs(run.spec, outputs)
        if problems:
            self._finish(execution, run, StepStatus.FAILED, "; ".join(problems))
            return
        run.typed_outputs = typed
        self._finish(execution, run, StepStatus.SUCCEEDED)

    def fail(self, execution: Execution, run: StepRun, reason: str | None, answer: Answer) -> None:
        """Apply a ``SendPipelineExecutionStepFailure`` to a running step."""
        run.answer = answer
        if run.status is StepStatus.STOPPING:
            self._finish(execution, run, StepStatus.STOPPED)
            return
        self._finish(execution, run, StepStatus.FAILED, reason or "The callback reported a failure")

    # --- life cycle -------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel the background work still in flight and wait for it to end."""
        await self.background.aclose()

    async def wait_idle(self) -> None:
        """Wait until no message delivery or stubbed step is in flight (those started meanwhile included)."""
        await self.background.wait_idle()

    # --- internals --------------------------------------------------------------------------------------

    def _check_running_limit(self) -> None:
        limit = self.max_running_executions
        if limit is None:
            return
        running = sum(1 for execution in self.store.executions.values() if not execution.finished)
        if running >= limit:
            raise ResourceLimitExceededError(
                f"The limit of {limit} running pipeline executions was reached; "
                "wait for executions to finish or stop some"
            )

    def _unique_execution_id(self, pipeline: Pipeline) -> str:
        while True:
            candidate = new_execution_id()
            if self.partition.execution_arn(pipeline.name, candidate) not in self.store.executions:
                return candidate

    def _unique_token(self) -> str:
        while True:
            candidate = new_callback_token()
            if candidate not in self.store.tokens:
                return candidate

    def _experiment(self, execution: Execution, now: float) -> dict[str, str] | None:
        spec = execution.spec.experiment
        if spec is None:
            return None
        context = ExecutionContext(execution, now)
        return {
            "ExperimentName": to_text(spec.experiment_name.evaluate(context)),
            "TrialName": to_text(spec.trial_name.evaluate(context)),
        }

    @staticmethod
    def _mlflow(execution: Execution, now: float, experiment_name: str | None) -> dict[str, str] | None:
        spec = execution.spec.mlflow
        if spec is None and not experiment_name:
            return None
        resolved = spec.evaluate(ExecutionContext(execution, now)) if spec is not None else {}
        config = {key: to_text(value) for key, value in resolved.items()} if isinstance(resolved, dict) else {}
        if experiment_name:
            config["MlflowExperimentName"] = experiment_name
        return config

    def _ready_steps(self, execution: Execution) -> list[StepSpec]:
        selected = execution.selected
        return [
            spec
            for spec in execution.spec.steps
            if spec.name not in execution.steps
            and (selected is None or spec.name in selected)
            and _ready(execution, spec)
        ]

    def _advance(self, execution: Execution) -> None:
        """Start every step that may start (within the parallelism limit), then settle."""
        self._for_each.advance(execution)
        for spec in self._ready_steps(execution):
            if spec.name in execution.steps:  # started meanwhile, by a step that finished at once
                continue
            if execution.status is not ExecutionStatus.EXECUTING or execution.failed_steps():
                break
            if not self._below_parallelism(execution):
                break
            self._start_step(execution, spec)
        self._settle(execution)

    @staticmethod
    def _below_parallelism(execution: Execution) -> bool:
        # A ForEach step takes no slot of its own: its children do.
        running = [run for run in execution.running_steps() if run.spec.kind is not StepKind.FOR_EACH]
        return execution.parallelism is None or len(running) < execution.parallelism

    def _start_child(self, execution: Execution, body: StepSpec, iteration: Iteration) -> None:
        if execution.status is ExecutionStatus.EXECUTING and self._below_parallelism(execution):
            self._start_step(execution, replace(body, name=child_name(body.name, iteration.index)), iteration)

    def _cached(self, execution: Execution, run: StepRun) -> tuple[str, StepRun] | None:
        return find_cached(self.store.executions_of(execution.pipeline), execution, run, self.clock())

    def _start_step(self, execution: Execution, spec: StepSpec, iteration: Iteration | None = None) -> None:
        now = self.clock()
        callback = spec.kind is StepKind.CALLBACK
        run = StepRun(
            spec=spec,
            seq=self.store.next_seq(),
            token=self._unique_token() if callback else "",
            start_time=now,
            attempt=execution.attempts.get(spec.name, 0) + 1,
            iteration=iteration,
        )
        execution.steps[spec.name] = run
        execution.last_modified_time = now
        if callback:
            self.store.tokens[run.token] = (execution, run)
            logger.debug("step %s of %s has callback token %s", spec.name, execution.arn, run.token)
        logger.info("%s step %s of %s starting", spec.type, spec.name, execution.arn)
        self._runner.start(execution, run)

    def _finish(self, execution: Execution, run: StepRun, status: StepStatus, reason: str | None = None) -> None:
        now = self.clock()
        run.status = status
        run.end_time = now
        run.failure_reason = None if reason is None else _clip(reason, _STEP_REASON_LIMIT)
        execution.last_modified_time = now
        logger.info("step %s of %s %s", run.spec.name, execution.arn, status.value)
        self._advance(execution)

    def _settle(self, execution: Execution) -> None:
        """Finish the execution if nothing runs any more (and, unless failed or stopping, nothing can start)."""
        if execution.finished or execution.running_steps():
            return
        failed = execution.failed_steps()
        if execution.status is ExecutionStatus.STOPPING:
            final = ExecutionStatus.STOPPED
        elif failed:
            final = ExecutionStatus.FAILED
            execution.failure_reason = EXECUTION_FAILURE_REASON
        elif not self._ready_steps(execution):
            final = ExecutionStatus.SUCCEEDED
        else:
            return
        execution.status = final
        execution.last_modified_time = self.clock()
        logger.info("execution %s %s", execution.arn, final.value)


def _ready(execution: Execution, spec: StepSpec) -> bool:
    done = execution.steps
    if not all(name in done and done[name].status is StepStatus.SUCCEEDED for name in spec.depends_on):
        return False
    branch = spec.branch
    return branch is None or done[branch.condition].outcome is branch.outcome
