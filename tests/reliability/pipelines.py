"""The callback pipelines the scenarios run, and what the ``echo`` handler must answer for each execution."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.emulator_fixtures import callback_step, create_pipeline, pipeline_definition

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

STEP = "Work"
LABEL = "reliability"
WEIGHTS = [1, 2.5, True, None]


def create_echo_pipeline(client: SageMakerClient, queue_url: str, extra: Mapping[str, Any] | None = None) -> str:
    """One Callback step whose typed outputs the ``echo`` handler fills from its arguments; returns the name.

    ``extra`` adds constant arguments (``{"handler": "sleepy"}`` routes the step to another handler).
    """
    arguments: dict[str, Any] = {"index": {"Get": "Parameters.Index"}, "label": LABEL, "weights": WEIGHTS}
    arguments.update(extra or {})
    step = callback_step(
        STEP,
        queue_url,
        arguments=arguments,
        outputs={"index": "Integer", "label": "String", "weights": "String"},
    )
    definition = pipeline_definition([step], parameters=[{"Name": "Index", "Type": "Integer", "DefaultValue": 0}])
    return create_pipeline(client, definition, f"reliability-{uuid.uuid4().hex[:10]}")


def start(client: SageMakerClient, pipeline: str, index: int) -> str:
    """Start execution number ``index``; returns its ARN."""
    response = client.start_pipeline_execution(
        PipelineName=pipeline,
        PipelineParameters=[{"Name": "Index", "Value": str(index)}],
        ClientRequestToken=str(uuid.uuid4()),
    )
    return response["PipelineExecutionArn"]


def expected_outputs(index: int) -> dict[str, str]:
    """What ``echo`` answers for execution ``index`` (the step's arguments as output text)."""
    return {"index": str(index), "label": LABEL, "weights": "[1,2.5,true,null]"}
