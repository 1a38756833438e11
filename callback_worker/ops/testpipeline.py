"""``send-test-message`` against the local SageMaker emulator: a real one-step pipeline execution sends the message.

A bare test message carries a token SageMaker never issued, so a worker that verifies tokens (the default) drops it
and no handler runs. When the SageMaker endpoint is the emulator (``callback-worker dev`` or ``emulate``), the test
message is sent by the emulator itself instead: a pipeline of one Callback step, whose arguments are the test
arguments, is created and started. The token is then real, the worker verifies it honestly, and the step's status
and outputs show what the handler answered (``callback-worker steps ARN``).

The endpoint is asked only when one is set explicitly (``AWS_ENDPOINT_URL_SAGEMAKER`` or ``AWS_ENDPOINT_URL``),
never SageMaker itself; the emulator marks each response with the header :data:`EMULATOR_HEADER`.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from callback_worker.ops.aws import sagemaker_client
from callback_worker.ops.tables import to_json
from callback_worker.worker.handler import JSONValue

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient

#: The header the emulator puts on every response (``callback_worker.emulator.protocol.EMULATOR_HEADER``; the
#: daemon's image has no emulator to import it from).
EMULATOR_HEADER = "x-callback-worker-emulator"
#: Test pipelines are named this, then a digest of their definition: the same arguments reuse one pipeline.
TEST_PIPELINE_PREFIX = "callback-worker-test"
TEST_STEP = "TestStep"
TEST_ROLE_ARN = "arn:aws:iam::123456789012:role/callback-worker-test"
#: A probe of an endpoint that does not answer gives up quickly: the bare message is sent instead.
PROBE_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)


class Probe:
    """What the configured SageMaker endpoint turned out to be."""

    def __init__(self, client: SageMakerClient | None, problem: str | None = None) -> None:
        self.client = client
        """A client of the emulator, or None when the endpoint is not the emulator."""
        self.problem = problem
        """Why an endpoint set explicitly could not be asked, if it could not."""


def probe_emulator() -> Probe:
    """Whether the SageMaker endpoint set in the environment is the emulator (one harmless call)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return Probe(None)
    client = sagemaker_client(PROBE_CONFIG)
    try:
        response = client.list_pipelines(MaxResults=1)
    except (BotoCoreError, ClientError) as exc:
        return Probe(None, f"the SageMaker endpoint {endpoint} did not answer ({type(exc).__name__})")
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return Probe(sagemaker_client() if EMULATOR_HEADER in headers else None)


def definition(queue_url: str, arguments: dict[str, JSONValue]) -> str:
    """A pipeline of one Callback step that sends ``arguments`` to ``queue_url``."""
    step = {"Name": TEST_STEP, "Type": "Callback", "SqsQueueUrl": queue_url, "Arguments": arguments}
    return json.dumps({"Version": "2020-12-01", "Steps": [step]}, sort_keys=True, separators=(",", ":"))


def start_test_execution(client: SageMakerClient, queue_url: str, arguments: dict[str, JSONValue]) -> str:
    """Start an execution of the test pipeline for these arguments (created on first use); its ARN."""
    text = definition(queue_url, arguments)
    digest = hashlib.sha256(text.encode()).hexdigest()
    name = f"{TEST_PIPELINE_PREFIX}-{digest[:12]}"
    # The digest as the request token: creating the same pipeline again is a replay, not a name clash.
    client.create_pipeline(PipelineName=name, PipelineDefinition=text, RoleArn=TEST_ROLE_ARN, ClientRequestToken=digest)
    started = client.start_pipeline_execution(PipelineName=name, ClientRequestToken=os.urandom(16).hex())
    return str(started["PipelineExecutionArn"])


def started_text(execution_arn: str, queue_url: str, arguments: dict[str, JSONValue]) -> str:
    """What ``send-test-message`` says after starting a test execution."""
    return (
        f"started execution {execution_arn}\n"
        f"its step {TEST_STEP} sends a callback message to {queue_url} with arguments "
        f"{json.dumps(arguments, ensure_ascii=False)}\n"
        f"follow it: callback-worker steps {execution_arn}"
    )


def started_json(execution_arn: str, queue_url: str, arguments: dict[str, JSONValue]) -> str:
    """``send-test-message --json`` after starting a test execution."""
    document = {"PipelineExecutionArn": execution_arn, "StepName": TEST_STEP, "QueueUrl": queue_url}
    return to_json(document | {"Arguments": arguments})
