"""handlers/stepfunctions.py against moto server running real state machines (execute_state_machine), and once
through the running worker and the SageMaker emulator."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from aiobotocore.session import get_session

from callback_worker.handlers._context import run_key
from callback_worker.handlers.stepfunctions import StepFunctionsHandler, execution_arn
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, OutputValue, Retry, StopHook
from tests.handler_support import (
    HANDLER_ARGUMENT,
    callback_context,
    clear_settings,
    handler_factory_fixture,
    moto_api_async,
    new_token,
)
from tests.integration.conftest import QueueFactory
from tests.worker_harness import (
    create_pipeline,
    one_step_definition,
    outputs_of,
    queue_depth,
    running_worker,
    step_of,
    wait_for_status,
    worker_settings,
)

PREFIX = "CALLBACK_WORKER_STEPFUNCTIONS_"
ROLE = "arn:aws:iam::123456789012:role/sfn"
HandlerFactory = Callable[..., StepFunctionsHandler]

PASS_OUTPUTS = {
    "StartAt": "Answer",
    "States": {
        "Answer": {
            "Type": "Pass",
            "Parameters": {"model.$": "$.arguments.model", "pipeline.$": "$.pipelineName", "input.$": "$"},
            "End": True,
        }
    },
}
WAIT_THEN_PASS = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Answer"},
        "Answer": {"Type": "Pass", "Result": {"done": True, "epochs": 3}, "End": True},
    },
}
WAIT_LONG = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 120, "End": True}}}
FAIL = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}
LIST_OUTPUT = {"StartAt": "Answer", "States": {"Answer": {"Type": "Pass", "Result": [1, 2], "End": True}}}


def context(token: str, arguments: Mapping[str, JSONValue] | None = None, state: JSONValue = None) -> CallbackContext:
    return callback_context("stepfunctions", token, arguments, state)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


make_handler = handler_factory_fixture(StepFunctionsHandler, PREFIX)


@pytest.fixture
async def sfn(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A Step Functions client on moto, which runs state machines for real while the test lasts."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", moto_server)
    await moto_api_async(moto_server, "config", {"stepfunctions": {"execute_state_machine": True}})
    try:
        async with get_session().create_client("stepfunctions", endpoint_url=moto_server) as client:
            yield client
    finally:
        await moto_api_async(moto_server, "config", {"stepfunctions": {"execute_state_machine": False}})


async def state_machine(sfn: Any, definition: dict[str, Any]) -> str:
    name = f"sm-{uuid.uuid4().hex[:8]}"
    response = await sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(response["stateMachineArn"])


async def run_to_end(handler: StepFunctionsHandler, call: CallbackContext, polls: int = 100) -> dict[str, OutputValue]:
    """Call the handler as the worker would, following its continuations (without their delays)."""
    for _ in range(polls):
        result = await handler(call)
        if not isinstance(result, Retry):
            return result
        call = context(call.token, call.arguments, result.state)
        await asyncio.sleep(0.05)
    raise AssertionError("the execution did not end")


async def executions(sfn: Any, machine: str) -> list[dict[str, Any]]:
    return list((await sfn.list_executions(stateMachineArn=machine))["executions"])


async def test_outputs_come_from_the_executions_json_output(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, PASS_OUTPUTS)
    handler = make_handler(state_machine_arn=machine)
    token = new_token()
    outputs = await run_to_end(handler, context(token, {"handler": "stepfunctions", "model": "s3://m", "n": 5}))
    assert outputs["model"] == "s3://m"
    assert outputs["pipeline"] == "p"
    assert json.loads(str(outputs["input"])) == {
        "arguments": {"model": "s3://m", "n": 5},
        "pipelineName": "p",
        "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:012345678901:pipeline/p/execution/e1",
        "executionId": "e1",
    }
    [execution] = await executions(sfn, machine)
    assert execution["name"] == f"callback-{run_key(token)}"
    assert execution["executionArn"] == execution_arn(machine, execution["name"])


async def test_a_running_execution_answers_retry_with_the_poll_interval(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, WAIT_THEN_PASS)
    handler = make_handler(state_machine_arn=machine, poll_interval="20")
    first = await handler(context(new_token()))
    assert isinstance(first, Retry)
    assert first.delay == 20
    assert isinstance(first.state, dict)
    assert first.state["scope"] == machine
    assert str(first.state["id"]).startswith(machine.replace(":stateMachine:", ":execution:"))


async def test_redelivered_first_calls_start_one_execution_while_it_runs_and_after_it_ended(
    sfn: Any, make_handler: HandlerFactory
) -> None:
    machine = await state_machine(sfn, WAIT_THEN_PASS)
    token = new_token()
    first = await make_handler(state_machine_arn=machine)(context(token, {"x": 1}))
    again = await make_handler(state_machine_arn=machine)(context(token, {"x": 1}))  # another replica, no state
    assert isinstance(first, Retry)
    assert isinstance(again, Retry)
    assert isinstance(first.state, dict)
    assert isinstance(again.state, dict)
    assert again.state["id"] == first.state["id"]
    outputs = await run_to_end(make_handler(state_machine_arn=machine), context(token, {"x": 1}))
    late = await make_handler(state_machine_arn=machine)(context(token, {"x": 1}))  # ExecutionAlreadyExists
    assert outputs == late == {"done": True, "epochs": 3}
    assert len(await executions(sfn, machine)) == 1


async def test_a_failed_execution_fails_the_step_with_error_and_cause(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, FAIL)
    token = new_token()
    with pytest.raises(Fail) as caught:
        await run_to_end(make_handler(state_machine_arn=machine), context(token))
    assert caught.value.reason == f"Step Functions execution callback-{run_key(token)} FAILED: Boom: it broke"


async def test_output_that_is_not_an_object_fails_saying_so(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, LIST_OUTPUT)
    with pytest.raises(Fail, match=r"is a JSON list, not an object: '\[1, 2\]'"):
        await run_to_end(make_handler(state_machine_arn=machine), context(new_token()))


async def test_on_stop_stops_the_execution_without_any_state(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, WAIT_LONG)
    handler = make_handler(state_machine_arn=machine)
    assert isinstance(handler, StopHook)
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    await handler.on_stop(context(token))
    with pytest.raises(Fail, match=f"callback-{run_key(token)} ABORTED"):  # moto drops StopExecution's error/cause
        await run_to_end(handler, context(token, state=first.state))
    await handler.on_stop(context(new_token()))  # no execution for this token: nothing to stop, no error


async def test_an_execution_past_max_wait_is_stopped_and_fails_naming_the_setting(
    sfn: Any, make_handler: HandlerFactory
) -> None:
    machine = await state_machine(sfn, WAIT_LONG)
    handler = make_handler(state_machine_arn=machine, max_wait="30")
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    assert isinstance(first.state, dict)
    overdue = {**first.state, "started": time.time() - 31}
    with pytest.raises(Fail, match=r"still RUNNING after 31 s \(CALLBACK_WORKER_STEPFUNCTIONS_MAX_WAIT=30\)"):
        await handler(context(token, state=overdue))
    [execution] = await executions(sfn, machine)
    assert execution["status"] == "ABORTED"


async def test_an_unknown_state_machine_fails_the_step(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:nope"
    with pytest.raises(Fail, match="Step Functions execution: StateMachineDoesNotExist"):
        await make_handler(state_machine_arn=machine)(context(new_token()))


async def test_the_state_machine_argument_is_used_only_when_allowed(sfn: Any, make_handler: HandlerFactory) -> None:
    machine = await state_machine(sfn, PASS_OUTPUTS)
    arguments: dict[str, JSONValue] = {"state_machine_arn": machine, "model": "m"}
    with pytest.raises(Fail, match="set CALLBACK_WORKER_STEPFUNCTIONS_STATE_MACHINE_ARN"):
        await make_handler()(context(new_token(), arguments))
    allowed = make_handler(allow_state_machine_argument="true")
    outputs = await run_to_end(allowed, context(new_token(), arguments))
    assert json.loads(str(outputs["input"]))["arguments"] == {"model": "m"}
    with pytest.raises(Fail, match="'state_machine_arn' is not a state machine ARN"):
        await allowed(context(new_token(), {"state_machine_arn": "arn:aws:lambda:us-east-1:1:function:f"}))


def test_execution_arns_drop_a_version_or_alias_qualifier() -> None:
    base = "arn:aws:states:eu-west-1:123456789012"
    assert execution_arn(f"{base}:stateMachine:sm", "n") == f"{base}:execution:sm:n"
    assert execution_arn(f"{base}:stateMachine:sm:prod", "n") == f"{base}:execution:sm:n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATE_MACHINE_ARN", "arn:aws:lambda:us-east-1:123456789012:function:f"),
        ("EXECUTION_NAME_PREFIX", "has spaces"),
        ("EXECUTION_NAME_PREFIX", "x" * 41),
        ("POLL_INTERVAL", "100000"),
    ],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}{name}="):
        StepFunctionsHandler()


async def test_through_the_worker_one_step_succeeds_by_continuations_and_one_is_stopped(
    sfn: Any, sagemaker: Any, sqs: Any, make_queue: QueueFactory, make_handler: HandlerFactory
) -> None:
    quick = await state_machine(sfn, WAIT_THEN_PASS)
    slow = await state_machine(sfn, WAIT_LONG)
    handler = make_handler(poll_interval="1", allow_state_machine_argument="true")
    queue_url, dlq_url = await make_queue()
    outputs = [{"OutputName": "epochs", "OutputType": "Integer"}, {"OutputName": "done", "OutputType": "Boolean"}]
    finishing = await create_pipeline(sagemaker, one_step_definition(queue_url, {"state_machine_arn": quick}, outputs))
    stopping = await create_pipeline(sagemaker, one_step_definition(queue_url, {"state_machine_arn": slow}))
    settings = worker_settings(queue_url, handler="stepfunctions")
    async with running_worker(settings, {"stepfunctions": handler}) as worker:
        done_arn = (await sagemaker.start_pipeline_execution(PipelineName=finishing))["PipelineExecutionArn"]
        stop_arn = (await sagemaker.start_pipeline_execution(PipelineName=stopping))["PipelineExecutionArn"]
        async with asyncio.timeout(20):
            while len(await executions(sfn, slow)) == 0:
                await asyncio.sleep(0.1)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=stop_arn)
        assert await wait_for_status(sagemaker, done_arn) == "Succeeded"
        assert await wait_for_status(sagemaker, stop_arn) == "Stopped"
        continued = worker.tally["continued"]
    assert outputs_of(await step_of(sagemaker, done_arn)) == {"done": "true", "epochs": "3"}
    assert continued >= 1
    [stopped] = await executions(sfn, slow)
    assert stopped["status"] == "ABORTED"
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0
