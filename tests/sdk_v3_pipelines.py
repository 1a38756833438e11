"""Pipelines written with the SageMaker Python SDK v3 (sagemaker 3.x: sagemaker-mlops, sagemaker-core), and the
script that writes their definitions to tests/fixtures/sdk_v3/.

Only the opt-in tier's environment has SDK v3 (``make sdk-v3-test``; the default one has v2): the default suite
runs the committed definitions (tests/integration/test_emulator_sdk_v3_fixtures.py), the opt-in tier
(tests/integration/test_emulator_sdk_v3.py) drives these same builders through the SDK and checks that the
definitions it writes are still the committed ones. To write them again (in that environment)::

    python -m tests.sdk_v3_pipelines tests/fixtures/sdk_v3

The definitions name the queue :data:`FIXTURE_QUEUE_URL`; a test swaps in its own queue.
"""

# The SDK is imported inside the builders: the default environment imports this module (for its constants) and
# has SDK v2, whose ``sagemaker`` package has no ``core``/``mlops``.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

#: The queue URL the committed definitions carry.
FIXTURE_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/sdk-v3-fixtures"
FIXTURES = Path(__file__).parent / "fixtures" / "sdk_v3"
ROLE_ARN = "arn:aws:iam::123456789012:role/pipeline-role"
BUCKET = "sdk-pipelines"
TRAINING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1"
MLFLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/pipelines"
#: The SDK's defaults config: no telemetry.
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def approval_gate(queue_url: str, session: Any, name: str, mlflow: bool = False) -> Any:
    """Approval (callback: approved Boolean, reason String) -> Gate: approved == true ? Deploy : Reject (Fail).

    Approval's inputs read a parameter and an execution variable; Reject's message joins a callback output.
    """
    from sagemaker.core.shapes import MlflowConfig  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.core.workflow.conditions import ConditionEquals  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.core.workflow.execution_variables import (  # type: ignore[import-not-found, unused-ignore]
        ExecutionVariables,
    )
    from sagemaker.core.workflow.functions import Join  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.core.workflow.parameters import (  # type: ignore[import-not-found, unused-ignore]
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.mlops.workflow.callback_step import (  # type: ignore[import-not-found, unused-ignore]
        CallbackOutput,
        CallbackOutputTypeEnum,
        CallbackStep,
    )
    from sagemaker.mlops.workflow.condition_step import ConditionStep  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.mlops.workflow.fail_step import FailStep  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-not-found, unused-ignore]

    model = ParameterString("Model", default_value="m-1")
    threshold = ParameterInteger("Threshold", default_value=3)
    approval = CallbackStep(
        name="Approval",
        sqs_queue_url=queue_url,
        inputs={
            "handler": "approval",
            "model": model,
            "threshold": threshold,
            "run": ExecutionVariables.PIPELINE_EXECUTION_ID,
        },
        outputs=[
            CallbackOutput(output_name="approved", output_type=CallbackOutputTypeEnum.Boolean),
            CallbackOutput(output_name="reason", output_type=CallbackOutputTypeEnum.String),
        ],
    )
    deploy = CallbackStep(
        name="Deploy", sqs_queue_url=queue_url, inputs={"handler": "deploy", "model": model}, outputs=[]
    )
    reject = FailStep(
        name="Reject", error_message=Join(on=" ", values=["Rejected:", approval.properties.Outputs["reason"]])
    )
    gate = ConditionStep(
        name="Gate",
        conditions=[ConditionEquals(left=approval.properties.Outputs["approved"], right=True)],
        if_steps=[deploy],
        else_steps=[reject],
    )
    config = MlflowConfig(mlflow_resource_arn=MLFLOW_ARN, mlflow_experiment_name="approvals") if mlflow else None
    return Pipeline(
        name=name,
        parameters=[model, threshold],
        steps=[approval, gate],
        sagemaker_session=session,
        mlflow_config=config,
    )


def for_each(queue_url: str, session: Any, name: str) -> Any:
    """Fan: a Score callback per item of the Items parameter (a JSON list), two at a time -> Summarize."""
    from sagemaker.core.workflow.parameters import ParameterString  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.mlops.workflow.callback_step import (  # type: ignore[import-not-found, unused-ignore]
        CallbackOutput,
        CallbackOutputTypeEnum,
        CallbackStep,
    )
    from sagemaker.mlops.workflow.for_each_step import (  # type: ignore[import-not-found, unused-ignore]
        CurrentItem,
        ForEachSelector,
        ForEachStep,
        IterationOutput,
    )
    from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-not-found, unused-ignore]

    items = ParameterString("Items", default_value='["a", "b", "c"]')
    score = CallbackStep(
        name="Score",
        sqs_queue_url=queue_url,
        inputs={"handler": "score", "item": CurrentItem()},
        outputs=[CallbackOutput(output_name="score", output_type=CallbackOutputTypeEnum.Float)],
    )
    selector = ForEachSelector(pick="MaxBy", field=IterationOutput(score).OutputParameters["score"])
    fan = ForEachStep(name="Fan", iterable_items=items, max_concurrency=2, for_each_body=[score], selector=selector)
    summarize = CallbackStep(
        name="Summarize",
        sqs_queue_url=queue_url,
        inputs={
            "handler": "summarize",
            "succeeded": fan.properties.SucceededStepCount,
            "first": fan.properties.IterationOutputs[0].Score.OutputParameters["score"],
            "best": fan.properties.Selected.OutputParameters["score"],
        },
        outputs=[],
    )
    return Pipeline(name=name, parameters=[items], steps=[fan, summarize], sagemaker_session=session)


def stubbed_training(queue_url: str, session: Any, name: str) -> Any:
    """Prepare (callback: train_uri) -> Train (a ModelTrainer's TrainingStep) -> Register (callback).

    Register reads the model artifact (a stub value) and the training job's name (filled in by the emulator).
    """
    from sagemaker.mlops.workflow.callback_step import (  # type: ignore[import-not-found, unused-ignore]
        CallbackOutput,
        CallbackOutputTypeEnum,
        CallbackStep,
    )
    from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.mlops.workflow.steps import TrainingStep  # type: ignore[import-not-found, unused-ignore]
    from sagemaker.train.configs import (  # type: ignore[import-not-found, unused-ignore]
        Compute,
        InputData,
        OutputDataConfig,
    )
    from sagemaker.train.model_trainer import ModelTrainer  # type: ignore[import-not-found, unused-ignore]

    prepare = CallbackStep(
        name="Prepare",
        sqs_queue_url=queue_url,
        inputs={"handler": "prepare"},
        outputs=[CallbackOutput(output_name="train_uri", output_type=CallbackOutputTypeEnum.String)],
    )
    trainer = ModelTrainer(
        training_image=TRAINING_IMAGE,
        role=ROLE_ARN,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{BUCKET}/output"),
        base_job_name="trainer",
        sagemaker_session=session,
    )
    data = InputData(channel_name="train", data_source=prepare.properties.Outputs["train_uri"])
    train = TrainingStep(name="Train", step_args=trainer.train(input_data_config=[data]))
    register = CallbackStep(
        name="Register",
        sqs_queue_url=queue_url,
        inputs={
            "handler": "register",
            "model": train.properties.ModelArtifacts.S3ModelArtifacts,
            "job": train.properties.TrainingJobName,
        },
        outputs=[],
    )
    return Pipeline(name=name, steps=[prepare, train, register], sagemaker_session=session)


#: Fixture file name -> (builder, keyword arguments).
BUILDERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "approval_gate": (approval_gate, {}),
    "approval_gate_mlflow": (approval_gate, {"mlflow": True}),
    "for_each": (for_each, {}),
    "stubbed_training": (stubbed_training, {}),
}


def offline_session() -> Any:
    """A PipelineSession that reaches no AWS endpoint while definitions are built."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession  # type: ignore[import-not-found, unused-ignore]

    boto_session = boto3.Session(region_name="us-east-1")
    return PipelineSession(boto_session=boto_session, default_bucket=BUCKET, sagemaker_config=NO_TELEMETRY)


def definitions(session: Any) -> dict[str, dict[str, Any]]:
    """Every fixture's definition as the installed SDK writes it today."""
    written: dict[str, dict[str, Any]] = {}
    for fixture, (build, options) in BUILDERS.items():
        pipeline = build(FIXTURE_QUEUE_URL, session, fixture.replace("_", "-"), **options)
        written[fixture] = json.loads(pipeline.definition())
    return written


def write(directory: Path, written: dict[str, dict[str, Any]]) -> None:
    """Write each definition to ``<directory>/<fixture>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    for fixture, definition in written.items():
        (directory / f"{fixture}.json").write_text(json.dumps(definition, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    """``python -m tests.sdk_v3_pipelines [DIRECTORY]``: write the fixtures (offline; no role check)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }.items():
        os.environ.setdefault(key, value)
    write(Path(argv[0]) if argv else FIXTURES, definitions(offline_session()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
