"""``python -m callback_worker.emulator --stub-steps --stub-values FILE`` as a process: a stubbed property reaches a
callback."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from tests.emulator_fixtures import (
    callback_step,
    create_pipeline,
    pipeline_definition,
    receive_messages,
    start_execution,
)
from tests.integration.test_emulator_cli import URL_LINE, read_until, spawn

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

MODEL = "s3://models/model.tar.gz"


def test_the_process_runs_stubbed_steps_with_values_from_the_file(
    tmp_path: Path, sqs_client: SQSClient, queue_url: str
) -> None:
    values = tmp_path / "stub-values.json"
    values.write_text(json.dumps({"Train": {"ModelArtifacts.S3ModelArtifacts": MODEL}}))
    process = spawn(["--port", "0", "--stub-steps", "--stub-values", str(values), "--stub-delay", "0"])
    try:
        url = read_until(process, URL_LINE)[1].decode()
        client = boto3.client("sagemaker", endpoint_url=url)
        train = {"Name": "Train", "Type": "Training", "Arguments": {"AlgorithmSpecification": {"TrainingImage": "x"}}}
        register = callback_step(
            "Register", queue_url, arguments={"model": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}
        )
        pipeline = create_pipeline(client, pipeline_definition([train, register]))
        start_execution(client, pipeline)
        (message,) = receive_messages(sqs_client, queue_url, 1)
        assert message["arguments"] == {"model": MODEL}
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def test_an_unreadable_stub_values_file_exits_with_status_2(tmp_path: Path) -> None:
    process = spawn(["--stub-steps", "--stub-values", str(tmp_path / "absent.json")])
    try:
        read_until(process, re.compile(rb"invalid emulator options: cannot read the stub values file"))
        assert process.wait(10) == 2
    finally:
        assert process.stderr is not None
        process.stderr.close()
