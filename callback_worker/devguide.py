"""What ``callback-worker dev`` prints once it is up: where everything listens, the variables that point another shell
at it, a test message, and a pipeline of one Callback step to paste into that shell (boto3 against the emulator)."""

from __future__ import annotations

import json
import shlex

from callback_worker.config.settings import Settings

PIPELINE = "my-callback-pipeline"
ROLE_ARN = "arn:aws:iam::123456789012:role/my-pipeline-role"
STEP = "MyCallback"

SNIPPET = """\
python - <<'EOF'
import json, os, time, uuid
import boto3

sagemaker = boto3.client("sagemaker")  # AWS_ENDPOINT_URL_SAGEMAKER: the emulator
step = {{
    "Name": "{step}",
    "Type": "Callback",
    "SqsQueueUrl": os.environ["QUEUE_URL"],
    "Arguments": {arguments},
    "OutputParameters": {outputs},
}}
definition = json.dumps({{"Version": "2020-12-01", "Steps": [step]}})
try:
    sagemaker.update_pipeline(PipelineName="{pipeline}", PipelineDefinition=definition, RoleArn="{role}")
except sagemaker.exceptions.ResourceNotFound:
    sagemaker.create_pipeline(
        PipelineName="{pipeline}", PipelineDefinition=definition, RoleArn="{role}",
        ClientRequestToken=str(uuid.uuid4()),
    )
arn = sagemaker.start_pipeline_execution(
    PipelineName="{pipeline}", ClientRequestToken=str(uuid.uuid4())
)["PipelineExecutionArn"]
print("started", arn)
status = "Executing"
while status == "Executing":
    time.sleep(0.5)
    status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
[answered] = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
print(status, answered.get("FailureReason") or answered["Metadata"]["Callback"].get("OutputParameters"))
EOF"""


def guide(
    settings: Settings, handlers: list[str], sqs_url: str, sagemaker_url: str, *, credential: str, region: str
) -> str:
    """The text ``callback-worker dev`` prints when it is ready."""
    handler = _example_handler(settings, handlers)
    argument = f"chosen by the {settings.handler_argument!r} argument"
    default = f"default {settings.handler}" if settings.handler else argument
    exports = {
        "AWS_ENDPOINT_URL_SQS": sqs_url,
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "AWS_ENDPOINT_URL_STS": sqs_url,  # moto's server answers STS too: doctor asks it who the credentials are
        "AWS_ACCESS_KEY_ID": credential,
        "AWS_SECRET_ACCESS_KEY": credential,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "QUEUE_URL": settings.queue_url,
    }
    lines = [
        "callback-worker dev: SQS, the SageMaker emulator and the worker on 127.0.0.1 (no AWS account, no Docker)",
        f"  SQS (moto server)      {sqs_url}",
        f"  SageMaker (emulator)   {sagemaker_url}",
        f"  queue                  {settings.queue_url} (dead-letter queue after 5 receives)",
        f"  handlers               {', '.join(handlers) or 'none'} ({default})",
        "",
        "Point another shell at it:",
        "",
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
        "",
        "Try a handler: with the emulator as the SageMaker endpoint, a one-step pipeline execution sends the message,",
        "so its token is real and the worker verifies it (follow it with the `callback-worker steps` line printed):",
        "",
        f'callback-worker send-test-message --queue-url "$QUEUE_URL" {_test_arguments(settings, handler)}',
        "",
        "Or run a pipeline of your own, one Callback step (paste into that shell):",
        "",
        snippet(settings, handler),
        "",
        "Ctrl-C stops the worker (it drains first), the emulator and SQS.",
    ]
    return "\n".join(lines)


def snippet(settings: Settings, handler: str | None) -> str:
    """A shell block that creates (or updates) a one-step pipeline on the emulator, starts it and waits for it."""
    arguments: dict[str, str] = {settings.handler_argument: handler} if handler else {}
    arguments["greeting"] = "hello"
    # The echo handler answers with one output per argument; another handler's outputs are its own to declare.
    outputs = [{"OutputName": "greeting", "OutputType": "String"}] if handler == "echo" else []
    return SNIPPET.format(
        step=STEP, pipeline=PIPELINE, role=ROLE_ARN, arguments=json.dumps(arguments), outputs=json.dumps(outputs)
    )


def _example_handler(settings: Settings, handlers: list[str]) -> str | None:
    if "echo" in handlers:
        return "echo"
    return settings.handler or (handlers[0] if handlers else None)


def _test_arguments(settings: Settings, handler: str | None) -> str:
    routed = f"--argument {settings.handler_argument}={handler} " if handler else ""
    return routed + "--argument greeting=hello"
