"""``callback-worker demo``: the whole loop on 127.0.0.1 — SQS (moto server), the SageMaker emulator and the worker.

Three executions of a two-step callback pipeline: one that succeeds (the second step reads the first step's
outputs), one routed to a handler that does not exist (it fails, and says why), and one whose handler waits until
the pipeline is stopped. Then two executions of an approval gate — a Review callback step whose ``approved``
output a Condition step reads: one approved (the Deploy step runs), one rejected (a Fail step ends the execution
with the reviewer's reason). Each execution's steps are printed in the order they happened, then what SageMaker
saw, each execution with what it shows (an expected failure in the demo's own words; the worker's own log lines only
with ``--verbose``). No AWS account, no Docker; every endpoint and credential is set here, explicitly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.session import get_session

from callback_worker.config.settings import Settings
from callback_worker.handlers.echo import EchoHandler
from callback_worker.offline import moto_sqs, offline_aws_env
from callback_worker.worker.app import build_worker
from callback_worker.worker.clients import aws_clients
from callback_worker.worker.handler import CallbackContext, Handler
from callback_worker.worker.logs import configure_logging

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

#: Anything not pointed at a local server below goes to a closed local port, never to AWS.
DEMO_ENV = offline_aws_env(credential="demo")
PIPELINE = "demo-pipeline"
APPROVAL_PIPELINE = "demo-approval"
ROLE_ARN = "arn:aws:iam::123456789012:role/demo-pipeline"
TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
#: The demo's handlers, as the demo explains them.
HANDLERS = {
    "echo": "built in: succeeds at once, one output per argument of the step",
    "wait": "this demo's own: holds its step until the pipeline is stopped; then its stop hook runs",
}


class WaitHandler:
    """A demo handler that waits until its pipeline is stopped (its task is cancelled by the worker)."""

    def __init__(self, say: Any) -> None:
        self.say = say

    async def __call__(self, context: CallbackContext) -> dict[str, str]:
        self.say(f"handler 'wait' is holding step of execution {context.execution_id} (lease kept alive)")
        await asyncio.sleep(3600)
        return {}

    def on_stop(self, context: CallbackContext) -> None:
        self.say(f"handler 'wait' stop hook ran for execution {context.execution_id}")


def definition(queue_url: str) -> str:
    """The demo pipeline: Prepare → Train, both callback steps; Train reads Prepare's outputs."""
    parameter = {"Get": "Parameters.Handler"}
    steps = [
        {
            "Name": "Prepare",
            "Type": "Callback",
            "SqsQueueUrl": queue_url,
            "Arguments": {
                "handler": parameter,
                "dataset": {"Get": "Parameters.Dataset"},
                "epochs": {"Get": "Parameters.Epochs"},
                "split": 0.8,
            },
            "OutputParameters": [
                {"OutputName": "dataset", "OutputType": "String"},
                {"OutputName": "epochs", "OutputType": "Integer"},
                {"OutputName": "split", "OutputType": "Float"},
            ],
        },
        {
            "Name": "Train",
            "Type": "Callback",
            "SqsQueueUrl": queue_url,
            "Arguments": {
                "handler": parameter,
                "trainData": {"Get": "Steps.Prepare.OutputParameters['dataset']"},
                "epochs": {"Get": "Steps.Prepare.OutputParameters['epochs']"},
                "run": {"Std:Join": {"On": "-", "Values": ["run", {"Get": "Execution.PipelineExecutionId"}]}},
            },
            "OutputParameters": [
                {"OutputName": "trainData", "OutputType": "String"},
                {"OutputName": "epochs", "OutputType": "Integer"},
                {"OutputName": "run", "OutputType": "String"},
            ],
        },
    ]
    parameters = [
        {"Name": "Handler", "Type": "String", "DefaultValue": "echo"},
        {"Name": "Dataset", "Type": "String", "DefaultValue": "s3://demo-bucket/abalone.csv"},
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 3},
    ]
    return json.dumps({"Version": "2020-12-01", "Parameters": parameters, "Steps": steps})


def approval_definition(queue_url: str) -> str:
    """The approval gate: Review (callback) → Gate: approved == true ? Deploy (callback) : Reject (Fail)."""
    review = {
        "Name": "Review",
        "Type": "Callback",
        "SqsQueueUrl": queue_url,
        "Arguments": {"approved": {"Get": "Parameters.Approve"}, "reason": {"Get": "Parameters.Reason"}},
        "OutputParameters": [
            {"OutputName": "approved", "OutputType": "Boolean"},
            {"OutputName": "reason", "OutputType": "String"},
        ],
    }
    deploy = {"Name": "Deploy", "Type": "Callback", "SqsQueueUrl": queue_url, "Arguments": {"model": "demo-model"}}
    reason = {"Get": "Steps.Review.OutputParameters['reason']"}
    reject = {
        "Name": "Reject",
        "Type": "Fail",
        "Arguments": {"ErrorMessage": {"Std:Join": {"On": " ", "Values": ["Rejected:", reason]}}},
    }
    approved = {"Get": "Steps.Review.OutputParameters['approved']"}
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": approved, "RightValue": True}],
            "IfSteps": [deploy],
            "ElseSteps": [reject],
        },
    }
    parameters = [
        {"Name": "Approve", "Type": "Boolean", "DefaultValue": True},
        {"Name": "Reason", "Type": "String", "DefaultValue": "looks good"},
    ]
    return json.dumps({"Version": "2020-12-01", "Parameters": parameters, "Steps": [review, gate]})


@dataclass(frozen=True)
class Scenario:
    label: str
    parameters: dict[str, str]
    expected: str
    shows: str
    """What the execution shows, in a sentence for the summary."""
    stop_after_start: bool = False
    pipeline: str = PIPELINE


SCENARIOS = (
    Scenario(
        "succeeds",
        {"Dataset": "s3://demo-bucket/abalone.csv"},
        "Succeeded",
        "echo answered Prepare; Train read Prepare's outputs as its arguments",
    ),
    Scenario(
        "unknown handler",
        {"Handler": "no-such-handler"},
        "Failed",
        "a failure on purpose: no handler has that name, so the worker answered the step with a Failure saying so "
        "(the message is not retried or left in the queue)",
    ),
    Scenario(
        "stopped",
        {"Handler": "wait"},
        "Stopped",
        "the pipeline was stopped while 'wait' held its step: the worker cancelled the handler, ran its stop hook "
        "and let the step stop",
        stop_after_start=True,
    ),
    Scenario(
        "approved",
        {"Approve": "true"},
        "Succeeded",
        "Review's output approved=true sent the Condition step to Deploy",
        pipeline=APPROVAL_PIPELINE,
    ),
    Scenario(
        "rejected",
        {"Approve": "false", "Reason": "accuracy below 0.9"},
        "Failed",
        "a failure on purpose: approved=false sent the Condition step to the Fail step, with the reviewer's reason",
        pipeline=APPROVAL_PIPELINE,
    ),
)


class Printer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:5.1f}s] {text}", flush=True)  # noqa: T201 - the demo talks to a person


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every execution ended as expected."""
    os.environ.update(DEMO_ENV)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(variable, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # The demo reports what happened itself, expected failures in its own words; the worker's log lines (an expected
    # failure is an error there) only with --verbose. An unexpected outcome still shows, in the summary and exit code.
    configure_logging("console", "INFO" if getattr(args, "verbose", False) else "CRITICAL")
    with moto_sqs() as sqs_url:
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        return asyncio.run(_demo(sqs_url, Printer()))


async def _demo(sqs_url: str, say: Printer) -> int:
    from callback_worker.emulator.server import EmulatorServer  # noqa: PLC0415 - not part of the daemon

    async with EmulatorServer(host="127.0.0.1", port=0) as emulator:
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = emulator.endpoint_url
        print("callback-worker demo: SQS, SageMaker and the worker, all on 127.0.0.1 (no AWS account)")  # noqa: T201
        print(f"  SQS (moto server)        {sqs_url}")  # noqa: T201
        print(f"  SageMaker (emulator)     {emulator.endpoint_url}")  # noqa: T201
        queue_url = await _create_queues()
        settings = Settings(queue_url=queue_url, handler="echo", wait_time=1, visibility_timeout=30, shutdown_grace=5)
        handlers: dict[str, Handler] = {"echo": EchoHandler(), "wait": WaitHandler(say)}
        print(f"  queue                    {queue_url} (with a dead-letter queue)")  # noqa: T201
        print("  worker handlers")  # noqa: T201
        for name in sorted(handlers):
            print(f"    {name:<6} {HANDLERS[name]}")  # noqa: T201
        print("  (the worker's own log lines: --verbose)\n")  # noqa: T201
        async with aws_clients(settings.concurrency) as (sqs, sagemaker):
            worker = build_worker(settings, handlers, sqs, sagemaker)
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            try:
                results = await _run_scenarios(sagemaker, queue_url, say)
            finally:
                stop.set()
                await running
            await _summary(sagemaker, results, worker.tally)
    return 0 if all(status == scenario.expected for scenario, _, status in results) else 1


def _token() -> str:
    return uuid.uuid4().hex


async def _create_queues() -> str:
    async with get_session().create_client("sqs") as sqs:
        dlq = await sqs.create_queue(QueueName="demo-callbacks-dlq")
        dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"]))["Attributes"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": "5"})
        queue = await sqs.create_queue(QueueName="demo-callbacks", Attributes={"RedrivePolicy": redrive})
        allowed = json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [dlq_arn["QueueArn"].removesuffix("-dlq")]}
        )
        await sqs.set_queue_attributes(QueueUrl=dlq["QueueUrl"], Attributes={"RedriveAllowPolicy": allowed})
        return queue["QueueUrl"]


async def _create_pipelines(sagemaker: SageMakerClient, queue_url: str, say: Printer) -> None:
    pipelines = (
        (PIPELINE, definition(queue_url), "Prepare -> Train (callback steps)"),
        (APPROVAL_PIPELINE, approval_definition(queue_url), "Review -> Gate ? Deploy : Reject (approval gate)"),
    )
    for name, text, shape in pipelines:
        await sagemaker.create_pipeline(
            PipelineName=name, PipelineDefinition=text, RoleArn=ROLE_ARN, ClientRequestToken=_token()
        )
        say(f"created pipeline {name!r}: {shape}")


async def _run_scenarios(sagemaker: SageMakerClient, queue_url: str, say: Printer) -> list[tuple[Scenario, str, str]]:
    await _create_pipelines(sagemaker, queue_url, say)
    started = []
    for scenario in SCENARIOS:
        response = await sagemaker.start_pipeline_execution(
            PipelineName=scenario.pipeline,
            ClientRequestToken=_token(),
            PipelineParameters=[{"Name": name, "Value": value} for name, value in scenario.parameters.items()],
        )
        arn = response["PipelineExecutionArn"]
        say(f"started execution {arn.rsplit('/', 1)[-1]} ({scenario.label}; parameters {scenario.parameters})")
        say(f"  {arn}")
        started.append((scenario, arn))
    results = await asyncio.gather(*(_follow(sagemaker, scenario, arn, say) for scenario, arn in started))
    return [(scenario, arn, status) for (scenario, arn), status in zip(started, results, strict=True)]


async def _follow(sagemaker: SageMakerClient, scenario: Scenario, arn: str, say: Printer) -> str:
    execution_id = arn.rsplit("/", 1)[-1]
    seen: dict[str, str] = {}
    stop_sent = False
    async with asyncio.timeout(60):
        while True:
            steps = (await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn))["PipelineExecutionSteps"]
            for step in sorted(steps, key=_happened_at):
                name, status = step["StepName"], step["StepStatus"]
                if seen.get(name) != status:
                    seen[name] = status
                    say(f"execution {execution_id}: step {name} {status}{_outcome(step)}")
            if scenario.stop_after_start and not stop_sent and "Executing" in seen.values():
                await asyncio.sleep(0.5)
                await sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=_token())
                say(f"execution {execution_id}: StopPipelineExecution sent")
                stop_sent = True
            described = await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described["PipelineExecutionStatus"] in TERMINAL:
                say(f"execution {execution_id}: {described['PipelineExecutionStatus']}")
                return str(described["PipelineExecutionStatus"])
            await asyncio.sleep(0.2)


def _happened_at(step: Any) -> tuple[Any, int, Any]:
    """When a step's current status began: its end for a finished step, else its start (steps of one poll in order)."""
    finished = step["StepStatus"] in TERMINAL and step.get("EndTime") is not None
    # On a tie, an upstream step's end comes before the start it allowed, and the earlier-started step first.
    return (step["EndTime"], 0, step["StartTime"]) if finished else (step["StartTime"], 1, step["StartTime"])


def _outcome(step: Any) -> str:
    metadata = step.get("Metadata", {})
    if "Condition" in metadata:
        return f" (outcome {metadata['Condition']['Outcome']})"
    if "Fail" in metadata:
        return f" ({metadata['Fail']['ErrorMessage']})"
    return ""


async def _summary(
    sagemaker: SageMakerClient, results: list[tuple[Scenario, str, str]], tally: Mapping[str, int]
) -> None:
    print("\nWhat SageMaker saw:")  # noqa: T201
    callback_steps: Counter[str] = Counter()
    for scenario, arn, status in results:
        callback_steps += await _print_execution(sagemaker, scenario, arn, status)
    print(f"\n{_worker_line(tally, callback_steps)}")  # noqa: T201


async def _print_execution(sagemaker: SageMakerClient, scenario: Scenario, arn: str, status: str) -> Counter[str]:
    """One execution of the summary; returns its callback steps counted by status."""
    described = await sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    mark = "ok" if status == scenario.expected else f"UNEXPECTED (wanted {scenario.expected})"
    print(f"\n  execution {arn.rsplit('/', 1)[-1]} ({scenario.label}): {status}  [{mark}]")  # noqa: T201
    print(f"    {arn}")  # noqa: T201
    print(textwrap.fill(scenario.shows, width=116, initial_indent="    ", subsequent_indent="    "))  # noqa: T201
    if described.get("FailureReason"):
        print(f"    failure reason: {described['FailureReason']}")  # noqa: T201
    steps = (await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending"))[
        "PipelineExecutionSteps"
    ]
    counted: Counter[str] = Counter()
    for step in steps:
        callback = step.get("Metadata", {}).get("Callback")
        if callback is not None:
            counted[step["StepStatus"]] += 1
        outputs = ", ".join(f"{o['Name']}={o['Value']}" for o in (callback or {}).get("OutputParameters", []))
        detail = outputs or step.get("FailureReason", "") or _outcome(step).strip(" ()")
        print(f"    {step['StepName']:<8} {step['StepStatus']:<10} {detail}")  # noqa: T201
    return counted


def _worker_line(tally: Mapping[str, int], callback_steps: Counter[str]) -> str:
    """What the worker did, in a user's terms: messages taken, and the callback steps by how they ended."""
    received, notices = tally.get("received", 0), tally.get("stop_messages", 0)
    order = ["Succeeded", "Failed", "Stopped"]
    statuses = sorted(callback_steps, key=lambda status: (order.index(status) if status in order else 3, status))
    ended = ", ".join(f"{callback_steps[status]} {status.lower()}" for status in statuses)
    notice = f" ({notices} of them {'a Stopping notice' if notices == 1 else 'Stopping notices'})" if notices else ""
    return (
        f"The worker took {received} messages off the queue{notice}, and answered "
        f"{sum(callback_steps.values())} callback steps: {ended}."
    )
