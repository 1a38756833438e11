"""SageMaker Pipelines in memory, for tests of handlers: executions of one callback step each, and the four calls the
worker makes — ``SendPipelineExecutionStepSuccess``/``Failure``, ``ListPipelineExecutionSteps`` and
``DescribePipelineExecution``.

It keeps SageMaker's rules where the worker relies on them: the first answer to a waiting step (``Executing`` or
``Stopping``) applies — an ``Executing`` step becomes ``Succeeded`` or ``Failed``, a ``Stopping`` one ``Stopped``; the
same request again (the same call with the same parameters, ``ClientRequestToken`` included) is a replay and
succeeds; any other answer to an answered step is
``ConflictException``; an unknown token or execution is ``ResourceNotFound``. Starting a step and stopping an
execution put the messages SageMaker would send on the queue. Errors are botocore ``ClientError`` s, as the real
client raises them. It never fails on its own.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from callback_worker.worker.handler import JSONValue
from callback_worker.worker.memory import MemoryQueue

ACCOUNT = "123456789012"
REGION = "us-east-1"
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def client_error(code: str, operation: str, message: str, status: int = 400) -> ClientError:
    """A botocore ``ClientError`` as the service raises it."""
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@dataclass(eq=False)
class CallbackStep:
    """One callback step of an execution, and what SageMaker was told about it."""

    token: str = field(repr=False)
    name: str
    execution_arn: str
    status: str = "Executing"
    outputs: dict[str, str] | None = None
    """The outputs of the Success that answered the step, as sent (text), or None."""
    failure_reason: str | None = None
    """The reason of the Failure that answered the step (a stopped step's too), or None."""
    answers: list[dict[str, Any]] = field(default_factory=list)
    """Every answer request that went through: the one applied, then its replays."""
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    """Answers refused with ``ConflictException`` (the step had another answer already)."""


@dataclass(eq=False)
class Execution:
    arn: str
    pipeline: str
    status: str = "Executing"
    steps: list[CallbackStep] = field(default_factory=list)


class MemorySageMaker:
    """Executions of callback steps whose messages go to ``queue``; see the module docstring for the rules kept."""

    def __init__(self, queue: MemoryQueue, *, region: str = REGION, account: str = ACCOUNT) -> None:
        self.queue = queue
        self.region = region
        self.account = account
        self.executions: dict[str, Execution] = {}
        self.steps: dict[str, CallbackStep] = {}
        self.calls: dict[str, int] = {}
        """Requests received, by operation name."""

    # -- what a test does ----------------------------------------------------------------------------------------

    def start(
        self, arguments: Mapping[str, JSONValue], *, pipeline: str = "test-pipeline", step: str = "CallbackStep"
    ) -> CallbackStep:
        """Start an execution of ``pipeline`` whose one callback step sends ``arguments``: its Executing message is
        on the queue now."""
        arn = f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{pipeline}/execution/{_execution_id()}"
        execution = self.executions[arn] = Execution(arn, pipeline)
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(10))
        callback = self.steps[token] = CallbackStep(token, step, arn)
        execution.steps.append(callback)
        self.queue.put(_body(callback, dict(arguments), "Executing"))
        return callback

    def stop(self, execution_arn: str) -> None:
        """``StopPipelineExecution``: each waiting callback step turns Stopping and gets its Stopping message. An
        execution that is not running is refused with ``ValueError``, as the service refuses it."""
        execution = self.executions[execution_arn]
        if execution.status != "Executing":
            raise ValueError(f"execution {execution_arn} is {execution.status}, not Executing: it cannot be stopped")
        execution.status = "Stopping"
        for step in execution.steps:
            if step.status == "Executing":
                step.status = "Stopping"
                self.queue.put(_body(step, {}, "Stopping"))
        self._settle(execution)

    # -- the client calls the worker makes -----------------------------------------------------------------------

    async def send_pipeline_execution_step_success(self, **request: Any) -> dict[str, Any]:
        outputs = {item["Name"]: item["Value"] for item in request.get("OutputParameters", [])}
        return self._answer("SendPipelineExecutionStepSuccess", request, outputs=outputs)

    async def send_pipeline_execution_step_failure(self, **request: Any) -> dict[str, Any]:
        return self._answer("SendPipelineExecutionStepFailure", request, reason=request.get("FailureReason", ""))

    async def list_pipeline_execution_steps(self, **request: Any) -> dict[str, Any]:
        execution = self._execution("ListPipelineExecutionSteps", request["PipelineExecutionArn"])
        listed = [
            {
                "StepName": step.name,
                "StepStatus": step.status,
                "Metadata": {"Callback": {"CallbackToken": step.token, "SqsQueueUrl": self.queue.url}},
            }
            for step in reversed(execution.steps)  # newest first, as the service lists them
        ]
        return {"PipelineExecutionSteps": listed}

    async def describe_pipeline_execution(self, **request: Any) -> dict[str, Any]:
        execution = self._execution("DescribePipelineExecution", request["PipelineExecutionArn"])
        return {
            "PipelineExecutionArn": execution.arn,
            "PipelineExecutionStatus": execution.status,
            "PipelineExperimentConfig": {"ExperimentName": execution.pipeline, "TrialName": execution.arn[-12:]},
        }

    async def close(self) -> None:
        return None

    # -- internals -----------------------------------------------------------------------------------------------

    def _execution(self, operation: str, arn: str) -> Execution:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        execution = self.executions.get(arn)
        if execution is None:
            raise client_error("ResourceNotFound", operation, f"Pipeline execution {arn} does not exist")
        return execution

    def _answer(
        self, operation: str, request: Mapping[str, Any], *, outputs: dict[str, str] | None = None, reason: str = ""
    ) -> dict[str, Any]:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        step = self.steps.get(request["CallbackToken"])
        if step is None:
            raise client_error("ResourceNotFound", operation, "The callback token does not exist")
        answer = {"operation": operation, **request}
        if step.answers:
            if answer != step.answers[0]:
                step.conflicts.append(answer)
                raise client_error("ConflictException", operation, f"Step {step.name} is already {step.status}")
            step.answers.append(answer)
            return {"PipelineExecutionArn": step.execution_arn}
        step.answers.append(answer)
        if step.status == "Stopping":
            step.status, step.failure_reason = "Stopped", reason or None
        elif outputs is not None:
            step.status, step.outputs = "Succeeded", outputs
        else:
            step.status, step.failure_reason = "Failed", reason
        self._settle(self.executions[step.execution_arn])
        return {"PipelineExecutionArn": step.execution_arn}

    def _settle(self, execution: Execution) -> None:
        statuses = {step.status for step in execution.steps}
        if statuses & {"Executing", "Stopping"}:
            return
        if execution.status == "Stopping":
            execution.status = "Stopped"
        else:
            execution.status = "Failed" if statuses & {"Failed", "Stopped"} else "Succeeded"


def _execution_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def _body(step: CallbackStep, arguments: dict[str, JSONValue], status: str) -> str:
    return json.dumps(
        {"token": step.token, "pipelineExecutionArn": step.execution_arn, "arguments": arguments, "status": status}
    )
