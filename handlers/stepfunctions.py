"""The ``stepfunctions`` handler: starts a Step Functions execution for the step and answers when it ends.

Settings, arguments, outputs and stop behaviour are documented on :class:`StepFunctionsHandler`.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Annotated

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callback_worker.handlers._aws import (
    JobRef,
    JobStatus,
    LazyClient,
    PollingJobHandler,
    PollingSettings,
    check_target,
)
from callback_worker.handlers._context import canonical_json, context_document, object_outputs, preview, run_key
from callback_worker.handlers._settings import load_settings
from callback_worker.worker.handler import CallbackContext, Fail

if TYPE_CHECKING:
    from types_aiobotocore_stepfunctions import SFNClient
    from types_aiobotocore_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

STATE_MACHINE_ARGUMENT = "state_machine_arn"
STATE_MACHINE_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}(:[A-Za-z0-9_-]+)?$"
)
_STATE_MACHINE_ARN = re.compile(STATE_MACHINE_ARN_PATTERN)
RUNNING = frozenset({"RUNNING", "PENDING_REDRIVE"})
STOP_ERROR = "SageMakerPipelineStopping"
STOP_CAUSE = "The SageMaker pipeline execution is stopping."
#: An ARN split on ':' keeps the state machine's name at this index.
_NAME_INDEX = 6


class StepFunctionsSettings(PollingSettings):
    """Settings of the ``stepfunctions`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_STEPFUNCTIONS_")

    state_machine_arn: Annotated[
        str | None,
        Field(default=None, pattern=STATE_MACHINE_ARN_PATTERN, description="The state machine to start."),
    ]
    allow_state_machine_argument: Annotated[
        bool,
        Field(default=False, description=f"Let the step argument '{STATE_MACHINE_ARGUMENT}' choose the machine."),
    ]
    execution_name_prefix: Annotated[
        str,
        Field(
            default="callback-",
            pattern=r"^[A-Za-z0-9_-]{0,40}$",
            description="Start of every execution name; a hash of the token follows.",
        ),
    ]


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a state machine (a version or alias qualifier is dropped)."""
    parts = state_machine_arn.split(":")
    return ":".join([*parts[:5], "execution", parts[_NAME_INDEX], name])


class StepFunctionsHandler(PollingJobHandler):
    """The ``stepfunctions`` handler: starts a Step Functions execution for the step and answers when it ends.

    Settings (environment, prefix ``CALLBACK_WORKER_STEPFUNCTIONS_``):

    - ``STATE_MACHINE_ARN`` (unset by default): The state machine (a Standard workflow; version/alias ARNs work).
    - ``ALLOW_STATE_MACHINE_ARGUMENT`` (default ``false``): Let the step argument ``state_machine_arn`` choose the
      machine.
    - ``EXECUTION_NAME_PREFIX`` (default ``callback-``): Start of every execution name; the rest is a hash of the token.
    - ``POLL_INTERVAL`` (default ``30``): Seconds between polls (1 to 43,200).
    - ``MAX_WAIT`` (default ``0``): Seconds after which an execution still running is stopped and the step failed (0 =
      no limit).

    Input: the context document (``{"arguments", "pipelineName", "pipelineExecutionArn", "executionId"}``, see
    ``handlers._context``; no ``attempt`` and never the token), as canonical JSON so that a repeated start sends the
    very same input. Step arguments: ``state_machine_arn`` (when allowed) chooses the machine and is not passed on.

    Outputs: the execution's output, which must be a JSON object (or ``null``: no outputs): scalars as they are, lists
    and objects as compact JSON. ``FAILED``, ``TIMED_OUT`` and ``ABORTED`` fail the step with the execution's error and
    cause.

    **Idempotent start.** The execution's name is ``EXECUTION_NAME_PREFIX`` + 32 hex digits of SHA-256 over the token.
    StartExecution with the name and input of a running execution returns that execution; once it has ended, Step
    Functions answers ExecutionAlreadyExists and the handler adopts the execution whose ARN the name gives. Names are
    unique per state machine for 90 days after an execution ends.

    **Stopping.** ``on_stop`` derives the execution ARN from the state machine and the name (no state needed) and calls
    StopExecution; an execution that does not exist is nothing to stop. Express workflows cannot be described or stopped
    this way and are not supported.

    **Continuations.** A continuation's state names the execution it polls; anyone who may send to the queue can write
    one, so the state's state machine must be this step's (``STATE_MACHINE_ARN``, or ``state_machine_arn`` when
    allowed) and its execution ARN the one the token's execution name gives on that machine. A state that names any
    other execution fails the step without a call to Step Functions.

    Permissions: ``states:StartExecution``, ``states:DescribeExecution``, ``states:StopExecution``. Tested against moto
    server with ``{"stepfunctions": {"execute_state_machine": true}}``, which really runs Pass, Fail and Wait states.
    """

    label = "Step Functions execution"

    def __init__(self) -> None:
        settings = load_settings(StepFunctionsSettings)
        super().__init__(settings)
        self.sfn_settings = settings
        self._client: LazyClient[SFNClient] = LazyClient(
            lambda: get_session().create_client("stepfunctions", config=AioConfig(retries={"mode": "standard"}))
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def execution_name(self, token: str) -> str:
        """The execution name for a callback token."""
        return self.sfn_settings.execution_name_prefix + run_key(token)

    def state_machine(self, context: CallbackContext) -> str:
        """The machine for this step: its ``state_machine_arn`` argument when allowed, else the setting."""
        chosen = context.arguments.get(STATE_MACHINE_ARGUMENT)
        if chosen is not None and self.sfn_settings.allow_state_machine_argument:
            if not isinstance(chosen, str) or not _STATE_MACHINE_ARN.match(chosen):
                raise Fail(f"the step argument {STATE_MACHINE_ARGUMENT!r} is not a state machine ARN")
            return chosen
        return str(self.sfn_settings.require("state_machine_arn"))

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (STATE_MACHINE_ARGUMENT,) if self.sfn_settings.allow_state_machine_argument else ()

    async def launch(self, context: CallbackContext) -> JobRef:
        machine = self.state_machine(context)
        name = self.execution_name(context.token)
        document = context_document(context, include_token=False, include_attempt=False, exclude=self._overrides())
        client = await self._client.get()
        try:
            response = await client.start_execution(stateMachineArn=machine, name=name, input=canonical_json(document))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return JobRef(execution_arn(machine, name), machine, time.time())
        return JobRef(response["executionArn"], machine, time.time())

    async def find(self, context: CallbackContext) -> JobRef | None:
        machine = self.state_machine(context)
        return JobRef(execution_arn(machine, self.execution_name(context.token)), machine, time.time())

    async def verify(self, ref: JobRef, context: CallbackContext) -> None:
        """The state's machine must be this step's, and its execution the one the token names on that machine."""
        machine = self.state_machine(context)
        check_target("state machine", ref.scope, machine)
        check_target("execution", ref.id, execution_arn(machine, self.execution_name(context.token)))

    async def poll(self, ref: JobRef, context: CallbackContext) -> JobStatus:
        client = await self._client.get()
        execution = await client.describe_execution(executionArn=ref.id)
        status = execution["status"]
        if status in RUNNING:
            return JobStatus(status)
        if status == "SUCCEEDED":
            what = f"the output of Step Functions execution {execution['name']}"
            return JobStatus(status, outputs=object_outputs(execution.get("output") or "", what))
        return JobStatus(status, failure=_failure(execution))

    async def stop(self, ref: JobRef) -> None:
        client = await self._client.get()
        try:
            await client.stop_execution(executionArn=ref.id, error=STOP_ERROR, cause=STOP_CAUSE)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise


def _failure(execution: DescribeExecutionOutputTypeDef) -> str:
    error = execution.get("error") or "no error"
    cause = execution.get("cause") or "no cause"
    if cause.lstrip().startswith("{"):
        try:  # Lambda and other task errors put a JSON object in the cause; its message is what people need
            cause = str(json.loads(cause).get("errorMessage", cause))
        except (ValueError, AttributeError):
            cause = preview(cause, 160)
    return f"Step Functions execution {execution['name']} {execution['status']}: {error}: {cause}"
