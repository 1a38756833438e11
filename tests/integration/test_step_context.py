"""Step names and experiment config resolved from the emulator's APIs, and routing by pipeline and step."""

from __future__ import annotations

import json
from typing import Any

from callback_worker.worker.handler import CallbackContext, Handler
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, running_worker, wait_for_status, worker_settings


def two_steps(queue_url: str) -> str:
    def step(name: str, **extra: Any) -> dict[str, Any]:
        return {"Name": name, "Type": "Callback", "SqsQueueUrl": queue_url, "Arguments": {"x": 1}, **extra}

    steps = [step("Prepare"), step("Train", DependsOn=["Prepare"])]
    experiment = {"ExperimentName": "churn", "TrialName": {"Get": "Execution.PipelineExecutionId"}}
    return json.dumps({"Version": "2020-12-01", "Steps": steps, "PipelineExperimentConfig": experiment})


async def test_routes_by_step_name_and_exposes_the_step_context(sagemaker: Any, make_queue: QueueFactory) -> None:
    seen: list[tuple[str, CallbackContext]] = []

    def recorder(label: str) -> Handler:
        def handle(context: CallbackContext) -> dict[str, str]:
            seen.append((label, context))
            return {}

        return handle

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, two_steps(queue_url), name="Churn-Model")
    settings = worker_settings(
        queue_url, handler="fallback", step_context=True, routes={"churn-model/Prepare": "prep", "*/Train": "train"}
    )
    handlers = {"prep": recorder("prep"), "train": recorder("train"), "fallback": recorder("fallback")}
    async with running_worker(settings, handlers) as worker:
        arn = (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"]
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
        lookups = worker.tally["step_lookups"]
    assert [(label, context.step_name) for label, context in seen] == [("prep", "Prepare"), ("train", "Train")]
    execution_id = arn.rsplit("/", 1)[-1]
    for _, context in seen:
        assert context.experiment_name == "churn"
        assert context.trial_name == execution_id
    # One DescribePipelineExecution, then one listing per step (Train started after the first listing).
    assert lookups == 3


async def test_without_step_context_routes_by_pipeline_only(sagemaker: Any, make_queue: QueueFactory) -> None:
    seen: list[CallbackContext] = []

    def handle(context: CallbackContext) -> dict[str, str]:
        seen.append(context)
        return {}

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, two_steps(queue_url), name="Forecast")
    settings = worker_settings(queue_url, handler="echo", routes={"forecast": "by-pipeline"}, verify_tokens=False)
    async with running_worker(settings, {"by-pipeline": handle}):
        arn = (await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"]
        assert await wait_for_status(sagemaker, arn) == "Succeeded"
    assert len(seen) == 2
    assert all(context.step_name is None and context.experiment_name is None for context in seen)
