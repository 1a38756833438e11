"""README's pipeline example run as written on the local loop, with the worker's built-in ``echo`` handler: its shell
block writes the JSON definition with the queue ``callback-worker dev`` exports, its Python creates the pipeline on
the emulator and starts the rejected run. Both run unchanged, in the environment the loop's printed ``export`` lines
set; the Review step's outputs feed the Condition step, approved to Deploy, rejected to the Fail step with the
reason."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from callback_worker.dev import CREDENTIAL
from callback_worker.devguide import guide
from callback_worker.emulator.server import EmulatorServer
from callback_worker.handlers.echo import EchoHandler
from callback_worker.offline import offline_aws_env
from tests.integration.conftest import QueueFactory
from tests.worker_harness import ROLE_ARN, outputs_of, running_worker, wait_for_status, worker_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(mark: str, language: str) -> str:
    """The first ``language`` block after the HTML comment ``mark``, as README has it."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"```{language}\n", text.index(f"<!-- {mark} -->")) + len(language) + 4
    return text[start : text.index("\n```", start)]


def dev_environment(queue_url: str, sqs_url: str, sagemaker_url: str) -> dict[str, str]:
    """A shell's environment after pasting the ``export`` lines ``callback-worker dev`` prints for this loop."""
    settings = worker_settings(queue_url, handler=None)
    text = guide(settings, ["echo"], sqs_url, sagemaker_url, credential=CREDENTIAL, region=os.environ["AWS_REGION"])
    exports = dict(shlex.split(line)[1].split("=", 1) for line in text.splitlines() if line.startswith("export "))
    kept = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CALLBACK_WORKER_"))}
    return {**kept, **offline_aws_env(), **exports}


async def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a README block as a reader would (without blocking the loop the emulator and the worker run on)."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"{command[-1]}\n{output.decode(errors='replace')}"
    return output.decode()


@pytest.mark.parametrize(
    ("rejected", "status", "steps"),
    [
        (False, "Succeeded", {"Review": "Succeeded", "Gate": "Succeeded", "Deploy": "Succeeded"}),
        (True, "Failed", {"Review": "Succeeded", "Gate": "Succeeded", "Reject": "Failed"}),
    ],
)
async def test_the_readme_pipeline_runs_as_written_on_the_local_loop(
    *,
    sagemaker: Any,
    loop_emulator: EmulatorServer,
    moto_server: str,
    make_queue: QueueFactory,
    tmp_path: Path,
    rejected: bool,
    status: str,
    steps: dict[str, str],
) -> None:
    queue_url, _ = await make_queue()
    env = dev_environment(queue_url, moto_server, loop_emulator.endpoint_url)
    await run(["bash", "-euo", "pipefail", "-c", readme_block("pipeline-definition", "sh")], tmp_path, env)
    definition = (tmp_path / "release.json").read_text(encoding="utf-8")
    assert json.loads(definition)["Steps"][0]["SqsQueueUrl"] == queue_url  # the loop's queue, from $QUEUE_URL
    async with running_worker(worker_settings(queue_url, handler=None), {"echo": EchoHandler()}):
        if rejected:  # README's Python: creates the pipeline, starts it rejected and prints the execution's ARN
            output = await run([sys.executable, "-c", readme_block("pipeline-start", "python")], tmp_path, env)
            arn = output.split()[-1]
        else:  # the same definition started with its defaults: approved
            await sagemaker.create_pipeline(PipelineName="release", PipelineDefinition=definition, RoleArn=ROLE_ARN)
            arn = (await sagemaker.start_pipeline_execution(PipelineName="release"))["PipelineExecutionArn"]
        assert await wait_for_status(sagemaker, arn) == status
    listed = (await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn))["PipelineExecutionSteps"]
    by_name = {step["StepName"]: step for step in listed}
    assert {step: by_name[step]["StepStatus"] for step in by_name} == steps
    review = outputs_of(by_name["Review"])
    assert review == {
        "approved": "false" if rejected else "true",
        "reason": "accuracy below 0.9" if rejected else "looks good",
    }
    if rejected:
        assert by_name["Reject"]["FailureReason"] == "Rejected: accuracy below 0.9"
