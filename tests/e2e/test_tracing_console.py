"""``callback-worker run`` with ``OTEL_TRACES_EXPORTER=console``: a real callback's spans on stdout, end to end
(moto SQS and the emulator on loopback), with the trace id in the log lines and no token anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callback_worker.emulator.server import ThreadedEmulatorServer
from tests.e2e.test_cli_run import worker_env
from tests.emulator_fixtures import create_pipeline, one_step_definition, start_execution, wait_for_status

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient


def spans_in(stdout: str) -> list[dict[str, Any]]:
    """The console exporter prints one JSON object per span, several lines each."""
    decoder, spans, index = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", index)) >= 0:
        span, index = decoder.raw_decode(stdout, start)
        spans.append(span)
    return spans


def test_console_traces_of_one_callback(
    tmp_path: Path, queue_url: str, threaded_emulator: ThreadedEmulatorServer, sagemaker_client: SageMakerClient
) -> None:
    env = worker_env(tmp_path, queue_url=queue_url, handler="echo", wait_time="1")
    env.update(
        AWS_ENDPOINT_URL_SAGEMAKER=threaded_emulator.endpoint_url,
        AWS_ENDPOINT_URL_SQS=os.environ["AWS_ENDPOINT_URL_SQS"],
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="callbacks-under-test",
    )
    pipeline = create_pipeline(sagemaker_client, one_step_definition(queue_url))
    command = [sys.executable, "-m", "callback_worker.cli", "run"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        execution = start_execution(sagemaker_client, pipeline)
        wait_for_status(sagemaker_client, execution, "Succeeded", timeout=30)
        token = next(
            step["Metadata"]["Callback"]["CallbackToken"]
            for step in sagemaker_client.list_pipeline_execution_steps(PipelineExecutionArn=execution)[
                "PipelineExecutionSteps"
            ]
        )
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    spans = spans_in(stdout)
    [root] = [span for span in spans if span["name"] == f"callback {pipeline}"]
    assert root["resource"]["attributes"]["service.name"] == "callbacks-under-test"
    assert root["attributes"]["callback.outcome"] == "success"
    trace_id = root["context"]["trace_id"]
    assert {span["name"] for span in spans if span["context"]["trace_id"] == trace_id} >= {
        f"callback {pipeline}",
        "handler echo",
        "SageMaker.SendPipelineExecutionStepSuccess",
    }
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    answered = [line for line in logged if line.get("event") == "step answered"]
    assert answered
    assert f"0x{answered[0]['trace_id']}" == trace_id
    assert token not in stdout
    assert token not in stderr
