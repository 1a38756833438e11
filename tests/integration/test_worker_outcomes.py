"""The worker against moto SQS and the emulator: every outcome path, checked through SageMaker's own API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from callback_worker.handlers.echo import EchoHandler
from callback_worker.worker.handler import CallbackContext, Fail, Handler
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

STRING = "String"


def declared(*names: str, kind: str = STRING) -> list[dict[str, str]]:
    return [{"OutputName": name, "OutputType": kind} for name in names]


async def start(sagemaker: Any, pipeline: str, **parameters: str) -> str:
    response = await sagemaker.start_pipeline_execution(
        PipelineName=pipeline, PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()]
    )
    return str(response["PipelineExecutionArn"])


async def test_two_hundred_executions_succeed_with_echo(sagemaker: Any, sqs: Any, make_queue: QueueFactory) -> None:
    queue_url, dlq_url = await make_queue()
    arguments = {"number": 5, "flag": True, "ratio": 0.25, "name": "abalone", "tags": ["a", "b"]}
    outputs = declared("name", "tags") + declared("number", kind="Integer") + declared("flag", kind="Boolean")
    outputs += declared("ratio", kind="Float")
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, arguments, outputs))
    async with running_worker(worker_settings(queue_url, concurrency=20, pollers=2), {"echo": EchoHandler()}):
        arns: list[str] = []
        for _ in range(10):  # keep the moto queue shallow: start in waves as the worker drains them
            wave = await asyncio.gather(*(start(sagemaker, pipeline) for _ in range(20)))
            arns.extend(wave)
            await asyncio.gather(*(wait_for_status(sagemaker, arn) for arn in wave))
        statuses = await asyncio.gather(*(wait_for_status(sagemaker, arn) for arn in arns))
    assert len(arns) == 200
    assert set(statuses) == {"Succeeded"}
    for arn in arns[::20]:
        assert outputs_of(await step_of(sagemaker, arn)) == {
            "number": "5",
            "flag": "true",
            "ratio": "0.25",
            "name": "abalone",
            "tags": '["a","b"]',
        }
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0


async def test_fail_answers_with_the_reason(sagemaker: Any, make_queue: QueueFactory) -> None:
    def refuse(context: CallbackContext) -> dict[str, str]:
        raise Fail(f"input {context.arguments['input']} is not ready")

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"input": "s3://b/k"}))
    async with running_worker(worker_settings(queue_url, handler="refuse"), {"refuse": refuse}):
        arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, arn) == "Failed"
    step = await step_of(sagemaker, arn)
    assert step["StepStatus"] == "Failed"
    assert step["FailureReason"] == "input s3://b/k is not ready"


async def test_crashing_handler_is_retried_then_fails_naming_the_error(
    sagemaker: Any, make_queue: QueueFactory
) -> None:
    calls: list[int] = []

    async def crash(context: CallbackContext) -> dict[str, str]:
        calls.append(context.attempt)
        raise ValueError(f"bad input on attempt {context.attempt}")

    queue_url, _ = await make_queue(max_receive_count=2)
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    settings = worker_settings(queue_url, handler="crash", max_attempts=3, retry_backoff=0.5)
    async with running_worker(settings, {"crash": crash}):
        arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, arn) == "Failed"
    assert calls == [1, 2, 3]
    reason = (await step_of(sagemaker, arn))["FailureReason"]
    assert "ValueError" in reason
    assert "bad input on attempt 3" in reason
    assert "3 attempt" in reason


async def test_unknown_handler_fails_naming_it_and_the_available_ones(sagemaker: Any, make_queue: QueueFactory) -> None:
    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"handler": "glue-job"}))
    async with running_worker(worker_settings(queue_url), {"echo": EchoHandler()}):
        arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, arn) == "Failed"
    reason = (await step_of(sagemaker, arn))["FailureReason"]
    assert "'glue-job'" in reason
    assert "echo" in reason


async def test_routing_argument_overrides_the_default_handler(sagemaker: Any, make_queue: QueueFactory) -> None:
    queue_url, _ = await make_queue()
    definition = one_step_definition(queue_url, {"handler": "constant"}, declared("answer"))
    pipeline = await create_pipeline(sagemaker, definition)
    handlers: dict[str, Handler] = {"echo": EchoHandler(), "constant": lambda context: {"answer": "42"}}
    async with running_worker(worker_settings(queue_url, handler="echo"), handlers):
        arn = await start(sagemaker, pipeline)
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
    assert outputs_of(await step_of(sagemaker, arn)) == {"answer": "42"}


async def test_over_limit_outputs_fail_naming_the_output(sagemaker: Any, make_queue: QueueFactory) -> None:
    cases: dict[str, Any] = {
        "too-many": {f"o{i}": i for i in range(51)},
        "too-long": {"report": "x" * 2000},
        "nested": {"config": {"a": 1}},
    }
    queue_url, _ = await make_queue()
    definition = json.loads(one_step_definition(queue_url, {"case": {"Get": "Parameters.Case"}}))
    definition["Parameters"] = [{"Name": "Case", "Type": "String", "DefaultValue": "too-many"}]
    pipeline = await create_pipeline(sagemaker, json.dumps(definition))
    handlers: dict[str, Handler] = {"limits": lambda context: cases[str(context.arguments["case"])]}
    async with running_worker(worker_settings(queue_url, handler="limits"), handlers):
        arns = {case: await start(sagemaker, pipeline, Case=case) for case in cases}
        for arn in arns.values():
            assert await wait_for_status(sagemaker, arn) == "Failed"
    reasons = {case: (await step_of(sagemaker, arn))["FailureReason"] for case, arn in arns.items()}
    assert "51 outputs" in reasons["too-many"]
    assert "'report'" in reasons["too-long"]
    assert "2000 characters" in reasons["too-long"]
    assert "'config'" in reasons["nested"]
    assert "dict" in reasons["nested"]
