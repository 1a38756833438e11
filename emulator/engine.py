"""Running executions: the step DAG, callback messages, answers and stopping.

Life of a callback step here, as in the service:

1. When every step it depends on has succeeded, the step starts: a fresh token, its arguments resolved (JSON
   types kept), status ``Starting``; the message ``{"token", "pipelineExecutionArn", "arguments",
   "status": "Executing"}`` goes to its queue and the step becomes ``Executing``. If the queue does not take
   the message, the step fails with a reason saying so.
2. ``SendPipelineExecutionStepSuccess``: each declared output must be present and parse as its declared type;
   otherwise the step fails with a reason naming the output. Outputs the step does not declare are recorded
   and otherwise ignored. On success its dependants start.
3. ``SendPipelineExecutionStepFailure``: the step fails with the given reason.
4. ``StopPipelineExecution``: the execution is ``Stopping``; every running step is ``Stopping`` and gets a
   second message with the same token and arguments and ``"status": "Stopping"``; once answered (either way)
   it is ``Stopped``; steps not started never start.

After a step fails no further step starts; the execution becomes ``Failed`` (its reason naming the failed
steps) once no step is still running. It is ``Succeeded`` when every step succeeded and ``Stopped`` when
stopping and no step is still running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulator.arns import Partition, new_callback_token, new_execution_id
from emulator.definition import StepSpec
from emulator.errors import ConflictError, ResourceLimitExceededError
from emulator.sqs import CallbackMessage, MessageSender
from emulator.state import (
    Answer,
    Execution,
    ExecutionStatus,
    Pipeline,
    StepRun,
    StepStatus,
    Store,
)
from emulator.values import Scalar, parse_typed, to_text

logger = logging.getLogger("emulator")

#: FailureReason of a step holds at most 1024 characters; of an execution, 1300.
_STEP_REASON_LIMIT = 1024
_EXECUTION_REASON_LIMIT = 1300


class EvaluationError(Exception):
    """An expression could not be evaluated for this execution (the step fails with this reason)."""


@dataclass(frozen=True)
class ExecutionRequest:
    """What ``StartPipelineExecution`` asks for."""

    pipeline: Pipeline
    parameters: dict[str, Scalar]
    display_name: str | None
    description: str | None
    parallelism: int | None
    client_request_token: str


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Context:
    """Values that expressions read, for one execution at one moment."""

    def __init__(self, execution: Execution, now: float) -> None:
        self._execution = execution
        self._now = now

    def parameter(self, name: str) -> Scalar:
        return self._execution.parameters[name]

    def step_output(self, step: str, output: str) -> Scalar:
        run = self._execution.steps.get(step)
        if run is None or output not in run.typed_outputs:
            raise EvaluationError(f"step {step!r} has no value for output {output!r}")
        return run.typed_outputs[output]

    def execution_variable(self, name: str) -> str:
        execution = self._execution
        variables = {
            "PipelineExecutionId": execution.id,
            "PipelineExecutionArn": execution.arn,
            "PipelineName": execution.pipeline.name,
            "PipelineArn": execution.pipeline.arn,
            "StartDateTime": _iso(execution.creation_time),
            "CurrentDateTime": _iso(self._now),
        }
        return variables[name]

    def experiment_property(self, name: str) -> str:
        if self._execution.experiment is None:
            raise EvaluationError(f"PipelineExperimentConfig.{name} is read, but the pipeline has none")
        return self._execution.experiment[name]


def _queue_url(spec: StepSpec, context: _Context) -> str:
    queue_url = spec.queue_url.evaluate(context)
    if not isinstance(queue_url, str) or not queue_url:
        raise EvaluationError(f"SqsQueueUrl resolved to {queue_url!r}, not a queue URL")
    return queue_url


def check_outputs(spec: StepSpec, outputs: Sequence[dict[str, str]]) -> tuple[dict[str, Scalar], list[str]]:
    """Type the reported outputs by the step's declarations: ``(typed values, problems)``.

    A problem is a declared output that is missing or does not parse as its declared type; outputs the step
    does not declare are neither typed nor a problem.
    """
    given = {item["Name"]: item["Value"] for item in outputs}
    typed: dict[str, Scalar] = {}
    problems: list[str] = []
    for output in spec.outputs:
        if output.name not in given:
            problems.append(f"output parameter {output.name!r} ({output.type.value}) was not provided")
            continue
        try:
            typed[output.name] = parse_typed(given[output.name], output.type)
        except ValueError:
            problems.append(
                f"output parameter {output.name!r}: {given[output.name]!r} is not a valid {output.type.value}"
            )
    return typed, problems


class Engine:
    """Runs executions: starts steps, delivers their messages, applies answers and stops."""

    def __init__(
        self,
        store: Store,
        partition: Partition,
        sender: MessageSender,
        *,
        max_running_executions: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.partition = partition
        self.sender = sender
        self.max_running_executions = max_running_executions
        self.clock = clock
        #: Every message the queues accepted, in order.
        self.sent: list[CallbackMessage] = []
        #: Every message a queue refused: the message and the error text.
        self.send_failures: list[tuple[CallbackMessage, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- executions -------------------------------------------------------------------------------------

    def start(self, request: ExecutionRequest) -> Execution:
        """Create an execution and start the steps that depend on nothing; returns it ``Executing``."""
        self._check_running_limit()
        pipeline = request.pipeline
        now = self.clock()
        execution_id = self._unique_execution_id(pipeline)
        execution = Execution(
            arn=self.partition.execution_arn(pipeline.name, execution_id),
            id=execution_id,
            pipeline=pipeline,
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
        self.store.executions[execution.arn] = execution
        self.store.started[(pipeline.arn, request.client_request_token)] = execution
        pipeline.last_run_time = now
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
            delivered = run.status is StepStatus.EXECUTING
            run.status = StepStatus.STOPPING
            if delivered:
                # A step still Starting gets its Stopping message right after its Executing one (see _deliver).
                self._spawn(self._send_stopping(execution, run))
        logger.info("execution %s stopping", execution.arn)
        self._settle(execution)

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
        """Cancel message deliveries still in flight and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no message delivery is in flight (deliveries started meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

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
        spec = execution.pipeline.spec.experiment
        if spec is None:
            return None
        context = _Context(execution, now)
        return {
            "ExperimentName": to_text(spec.experiment_name.evaluate(context)),
            "TrialName": to_text(spec.trial_name.evaluate(context)),
        }

    def _advance(self, execution: Execution) -> None:
        """Start every step whose dependencies succeeded (within the parallelism limit), then settle."""
        for spec in execution.pipeline.spec.steps:
            if execution.status is not ExecutionStatus.EXECUTING or execution.failed_steps():
                break
            if spec.name in execution.steps or not self._ready(execution, spec):
                continue
            if execution.parallelism is not None and len(execution.running_steps()) >= execution.parallelism:
                break
            self._start_step(execution, spec)
        self._settle(execution)

    @staticmethod
    def _ready(execution: Execution, spec: StepSpec) -> bool:
        done = execution.steps
        return all(name in done and done[name].status is StepStatus.SUCCEEDED for name in spec.depends_on)

    def _start_step(self, execution: Execution, spec: StepSpec) -> None:
        now = self.clock()
        run = StepRun(spec=spec, seq=self.store.next_seq(), token=self._unique_token(), start_time=now)
        execution.steps[spec.name] = run
        execution.last_modified_time = now
        self.store.tokens[run.token] = (execution, run)
        context = _Context(execution, now)
        try:
            run.queue_url = _queue_url(spec, context)
            run.arguments = spec.arguments.evaluate(context)
        except EvaluationError as error:
            self._finish(execution, run, StepStatus.FAILED, f"Could not resolve the step's arguments: {error}")
            return
        logger.info("step %s of %s starting", spec.name, execution.arn)
        logger.debug("step %s of %s has callback token %s", spec.name, execution.arn, run.token)
        self._spawn(self._deliver(execution, run))

    def _message(self, execution: Execution, run: StepRun, status: str) -> CallbackMessage:
        return CallbackMessage(run.queue_url, run.token, execution.arn, run.arguments, status)

    async def _deliver(self, execution: Execution, run: StepRun) -> None:
        message = self._message(execution, run, "Executing")
        error = await self._send(message)
        if error is not None:
            if run.status is StepStatus.STARTING:
                reason = f"Failed to send the callback message to the SQS queue {run.queue_url}: {error}"
                self._finish(execution, run, StepStatus.FAILED, reason)
            elif run.status is StepStatus.STOPPING:
                self._finish(execution, run, StepStatus.STOPPED)
            return
        if run.status is StepStatus.STARTING:
            run.status = StepStatus.EXECUTING
            execution.last_modified_time = self.clock()
        elif run.status is StepStatus.STOPPING:
            await self._send_stopping(execution, run)

    async def _send_stopping(self, execution: Execution, run: StepRun) -> None:
        # If this message is lost the step stays Stopping, as a service step would: only an answer ends it.
        await self._send(self._message(execution, run, "Stopping"))

    async def _send(self, message: CallbackMessage) -> str | None:
        """Send one message; the error text if the queue did not take it, else ``None``."""
        try:
            await self.sender.send(message.queue_url, message.body())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the SQS client raised becomes the step's reason
            text = f"{type(error).__name__}: {error}"
            self.send_failures.append((message, text))
            logger.warning("sending to %s failed: %s", message.queue_url, text)
            return text
        self.sent.append(message)
        return None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, execution: Execution, run: StepRun, status: StepStatus, reason: str | None = None) -> None:
        now = self.clock()
        run.status = status
        run.end_time = now
        run.failure_reason = None if reason is None else _clip(reason, _STEP_REASON_LIMIT)
        execution.last_modified_time = now
        logger.info("step %s of %s %s", run.spec.name, execution.arn, status.value)
        self._advance(execution)

    def _settle(self, execution: Execution) -> None:
        """Finish the execution if nothing runs any more."""
        if execution.finished or execution.running_steps():
            return
        failed = execution.failed_steps()
        if execution.status is ExecutionStatus.STOPPING:
            final = ExecutionStatus.STOPPED
        elif failed:
            final = ExecutionStatus.FAILED
            execution.failure_reason = _clip(self._failure_reason(failed), _EXECUTION_REASON_LIMIT)
        elif len(execution.steps) == len(execution.pipeline.spec.steps):
            final = ExecutionStatus.SUCCEEDED
        else:
            return
        execution.status = final
        execution.last_modified_time = self.clock()
        logger.info("execution %s %s", execution.arn, final.value)

    @staticmethod
    def _failure_reason(failed: list[StepRun]) -> str:
        if len(failed) == 1:
            run = failed[0]
            return f"Step failure: Step '{run.spec.name}' failed: {run.failure_reason}"
        names = ", ".join(f"'{run.spec.name}'" for run in failed)
        return f"Step failure: Steps {names} failed; first: {failed[0].failure_reason}"
