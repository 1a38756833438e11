"""The ``command`` handler through the running worker, moto SQS and the SageMaker emulator: a program answers one
step, and stopping another pipeline kills the program working on it."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from callback_worker.handlers.command import CommandHandler
from tests.handler_support import alive, clear_settings
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

SCRIPT = """
    import json, os, pathlib, sys, time
    document = json.load(sys.stdin)
    if document["arguments"].get("mode") == "wait":
        pathlib.Path(os.environ["CALLBACK_ARG_PIDFILE"]).write_text(str(os.getpid()))
        time.sleep(120)
    print("working on", document["pipelineName"])
    print(json.dumps({"rows": int(os.environ["CALLBACK_ARG_ROWS"]) * 2, "source": document["arguments"]["source"]}))
"""


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> CommandHandler:
    clear_settings(monkeypatch, "CALLBACK_WORKER_COMMAND_")
    monkeypatch.setenv("CALLBACK_WORKER_COMMAND_ARGV", json.dumps([sys.executable, "-c", textwrap.dedent(SCRIPT)]))
    monkeypatch.setenv("CALLBACK_WORKER_COMMAND_KILL_GRACE", "1")
    return CommandHandler()


def read_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def test_a_program_answers_one_step_and_stopping_kills_another(
    handler: CommandHandler, sagemaker: Any, sqs: Any, make_queue: QueueFactory, tmp_path: Path
) -> None:
    queue_url, dlq_url = await make_queue()
    pidfile = tmp_path / "pid"
    outputs = [{"OutputName": "rows", "OutputType": "Integer"}, {"OutputName": "source", "OutputType": "String"}]
    answering = one_step_definition(queue_url, {"rows": 21, "source": "s3://b/k"}, outputs)
    waiting = one_step_definition(queue_url, {"mode": "wait", "pidfile": str(pidfile), "rows": 1, "source": "-"})
    answered = await create_pipeline(sagemaker, answering)
    stopped = await create_pipeline(sagemaker, waiting)
    async with running_worker(worker_settings(queue_url, handler="command"), {"command": handler}):
        done_arn = (await sagemaker.start_pipeline_execution(PipelineName=answered))["PipelineExecutionArn"]
        stop_arn = (await sagemaker.start_pipeline_execution(PipelineName=stopped))["PipelineExecutionArn"]
        async with asyncio.timeout(20):
            while (pid := read_pid(pidfile)) is None:
                await asyncio.sleep(0.05)
        await sagemaker.stop_pipeline_execution(PipelineExecutionArn=stop_arn)
        assert await wait_for_status(sagemaker, done_arn) == "Succeeded"
        assert await wait_for_status(sagemaker, stop_arn) == "Stopped"
    assert outputs_of(await step_of(sagemaker, done_arn)) == {"rows": "42", "source": "s3://b/k"}
    assert not alive(pid)
    assert await queue_depth(sqs, queue_url) == 0
    assert await queue_depth(sqs, dlq_url) == 0
