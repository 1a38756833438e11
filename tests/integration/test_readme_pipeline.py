"""README's pipeline example, its JSON definition as written there, run on the emulator with the worker's built-in
``echo`` handler: the Review step's outputs feed the Condition step, approved to Deploy, rejected to the Fail step
with the reason."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from callback_worker.handlers.echo import EchoHandler
from tests.integration.conftest import QueueFactory
from tests.worker_harness import ROLE_ARN, outputs_of, running_worker, wait_for_status, worker_settings

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = "<!-- pipeline-definition -->\n```json\n"
README_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


def readme_definition(queue_url: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(MARK) + len(MARK)
    definition = text[start : text.index("\n```", start)]
    json.loads(definition)  # the block is the JSON it claims to be
    return definition.replace(README_QUEUE, queue_url)


@pytest.mark.parametrize(
    ("parameters", "status", "steps"),
    [
        ({}, "Succeeded", {"Review": "Succeeded", "Gate": "Succeeded", "Deploy": "Succeeded"}),
        (
            {"Approve": "false", "Reason": "accuracy below 0.9"},
            "Failed",
            {"Review": "Succeeded", "Gate": "Succeeded", "Reject": "Failed"},
        ),
    ],
)
async def test_the_readme_pipeline_runs_with_the_worker(
    sagemaker: Any, make_queue: QueueFactory, parameters: dict[str, str], status: str, steps: dict[str, str]
) -> None:
    queue_url, _ = await make_queue()
    name = f"release-{uuid.uuid4().hex[:8]}"
    definition = readme_definition(queue_url)
    await sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=ROLE_ARN)
    async with running_worker(worker_settings(queue_url, handler=None), {"echo": EchoHandler()}):
        response = await sagemaker.start_pipeline_execution(
            PipelineName=name, PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()]
        )
        arn = response["PipelineExecutionArn"]
        assert await wait_for_status(sagemaker, arn) == status
    listed = (await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn))["PipelineExecutionSteps"]
    by_name = {step["StepName"]: step for step in listed}
    assert {step: by_name[step]["StepStatus"] for step in by_name} == steps
    review = outputs_of(by_name["Review"])
    assert review == {"approved": "false" if parameters else "true", "reason": parameters.get("Reason", "looks good")}
    if "Reject" in by_name:
        assert by_name["Reject"]["FailureReason"] == "Rejected: accuracy below 0.9"
