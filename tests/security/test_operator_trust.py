"""Operator commands trust SageMaker, not message bodies.

Before: ``dlq answer --execution-arn X`` answered every token a dead-lettered body claimed for X without asking
SageMaker whether the token's step belongs to X, so whoever could send to the DLQ could plant another pipeline's
token under X and have the runbook's ``--succeed --output approvedBy=alice`` approve that other gate; a failed
look-up did not stop the answer either. Now a token is answered only when ListPipelineExecutionSteps of that
execution lists it as a callback step still waiting; the others are refused with why, and kept.

Everything runs in-process (``callback_worker.ops.main``) against the emulator and the moto server; the failed
look-up is a fault proxy in front of the emulator.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest

from callback_worker.emulator import ThreadedEmulatorServer
from callback_worker.ops import ExitCode, main
from callback_worker.worker.outcome import failure
from tests.dlq_support import Queues, body_counts, callback_body, dead_letter_everything, drain, make_queues
from tests.emulator_fixtures import create_pipeline, list_steps, one_step_definition, wait_for_status
from tests.faultproxy import FaultProxy, Rule

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

APPROVAL = {"approvedBy": "String"}


@dataclass
class Stage:
    """An emulator, clients on it and on moto, a source queue with its DLQ, and a second queue for another team."""

    emulator: ThreadedEmulatorServer
    sm: SageMakerClient
    sqs: SQSClient
    queues: Queues
    other_queue: str

    def start(self, queue: str) -> str:
        """An execution of a new one-step approval pipeline sending to ``queue``; its ARN, once its message is sent."""
        name = create_pipeline(self.sm, one_step_definition(queue, outputs=APPROVAL))
        arn = self.sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=str(uuid.uuid4()))
        self.emulator.wait_idle()
        return arn["PipelineExecutionArn"]

    def token_of(self, arn: str) -> str:
        return str(list_steps(self.sm, arn)["A"]["Metadata"]["Callback"]["CallbackToken"])

    def status_of(self, arn: str) -> str:
        return str(list_steps(self.sm, arn)["A"]["StepStatus"])


@pytest.fixture
def stage(
    emulator_factory: Callable[..., ThreadedEmulatorServer], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stage]:
    server = emulator_factory()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", server.endpoint_url)
    sm = boto3.client("sagemaker", endpoint_url=server.endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queues = make_queues(sqs)
    other = sqs.create_queue(QueueName=f"other-team-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", queues.source)
    yield Stage(server, sm, sqs, queues, other)
    sm.close()
    sqs.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def results(out: str) -> dict[str | None, tuple[str, str | None, bool]]:
    """``dlq answer --json``: masked token → (result, why, deleted)."""
    return {
        item["CallbackToken"]: (item["Result"], item["Why"], item["Deleted"]) for item in json.loads(out)["Messages"]
    }


def masked(token: str) -> str:
    return f"{token[:3]}*******"


def test_a_body_claiming_one_execution_with_another_executions_token_is_refused(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    release = stage.start(stage.queues.source)
    dead_letter_everything(stage.sqs, stage.queues, 1)
    gate = stage.start(stage.other_queue)  # another team's approval gate, its message on its own queue
    planted = callback_body(stage.token_of(gate), release)
    stage.sqs.send_message(QueueUrl=stage.queues.dlq, MessageBody=planted)

    argv = ["dlq", "answer", "--execution-arn", release, "--succeed", "--output", "approvedBy=alice", "--json"]
    code, out, err = cli(capsys, *argv, "--dry-run")
    assert (code, err) == (ExitCode.NOT_FOUND, "")
    assert results(out)[masked(stage.token_of(gate))] == ("refused", "not listed under this execution", False)

    code, out, err = cli(capsys, *argv)
    assert (code, err) == (ExitCode.NOT_FOUND, "")
    assert results(out) == {
        masked(stage.token_of(release)): ("answered", None, True),
        masked(stage.token_of(gate)): ("refused", "not listed under this execution", False),
    }
    wait_for_status(stage.sm, release, "Succeeded")
    assert stage.status_of(gate) == "Executing", "the other team's gate was not approved"

    code, out, err = cli(capsys, "dlq", "answer", "--all", "--succeed", "--output", "approvedBy=alice")
    assert (code, err) == (ExitCode.NOT_FOUND, "")
    assert out.splitlines()[1].endswith("refused (not listed under this execution); kept")
    assert stage.status_of(gate) == "Executing"
    assert body_counts(drain(stage.sqs, stage.queues.dlq)) == {planted: 1}, "the planted body is kept as evidence"


async def test_an_inconclusive_look_up_refuses_and_sends_nothing(
    stage: Stage, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = await asyncio.to_thread(stage.start, stage.queues.source)
    await asyncio.to_thread(dead_letter_everything, stage.sqs, stage.queues, 1)
    token = await asyncio.to_thread(stage.token_of, arn)
    async with FaultProxy(stage.emulator.endpoint_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", proxy.url)
        proxy.add(Rule("ListPipelineExecutionSteps", "error", code="AccessDeniedException", times=100))
        argv = ["dlq", "answer", "--execution-arn", arn, "--reason", "gave up", "--json"]
        code = await asyncio.to_thread(main, argv)
        out, err = capsys.readouterr()
        assert proxy.count("SendPipelineExecutionStepFailure") == 0, "nothing sent on an inconclusive look-up"
        assert code == ExitCode.NOT_FOUND
        assert err == "callback-worker: some steps could not be looked up (AccessDeniedException: injected fault)\n"
        why = "look-up failed: AccessDeniedException: injected fault"
        assert results(out) == {masked(token): ("refused", why, False)}

        argv = ["fail", "--execution-arn", arn, "--step", "A", "--reason", "gave up"]
        assert await asyncio.to_thread(main, argv) == ExitCode.ERROR
        assert capsys.readouterr() == (
            "",
            f"callback-worker: the steps of {arn} could not be listed (AccessDeniedException: injected fault); "
            "nothing sent\n",
        )
        assert proxy.count("SendPipelineExecutionStepFailure") == 0
    assert await asyncio.to_thread(stage.status_of, arn) == "Executing"
    assert await asyncio.to_thread(drain, stage.sqs, stage.queues.dlq) != []


def test_a_finished_step_is_not_answered_and_its_message_is_deleted(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = stage.start(stage.queues.source)
    dead_letter_everything(stage.sqs, stage.queues, 1)
    token = stage.token_of(arn)
    stage.sm.send_pipeline_execution_step_failure(**failure("answered by the worker").request(token))

    code, out, err = cli(capsys, "dlq", "answer", "--execution-arn", arn, "--succeed", "--json")
    assert (code, err) == (ExitCode.OK, "")
    assert results(out) == {masked(token): ("already finished", "the step is Failed", True)}
    assert drain(stage.sqs, stage.queues.dlq) == []
    assert list_steps(stage.sm, arn)["A"]["FailureReason"] == "answered by the worker"


def test_succeed_and_fail_with_an_execution_answer_only_its_waiting_callback_steps(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    release = stage.start(stage.queues.source)
    gate = stage.start(stage.other_queue)
    gate_token = stage.token_of(gate)

    code, out, err = cli(capsys, "succeed", gate_token, "--execution-arn", release, "--output", "approvedBy=alice")
    assert (code, out) == (ExitCode.NOT_FOUND, "")
    assert err == f"callback-worker: execution {release} lists no callback step with this token; nothing sent\n"
    assert stage.status_of(gate) == "Executing"

    code, out, err = cli(capsys, "succeed", gate_token, "--execution-arn", gate, "--output", "approvedBy=alice")
    assert (code, err) == (ExitCode.OK, "")
    wait_for_status(stage.sm, gate, "Succeeded")

    code, out, err = cli(capsys, "succeed", "--execution-arn", gate, "--step", "A", "--output", "approvedBy=alice")
    assert (code, out) == (ExitCode.CONFLICT, "")
    assert err == (
        f"callback-worker: the callback step named 'A' of execution {gate} already finished (Succeeded); nothing sent\n"
    )

    # A stopping step still waits for the answer that stops it.
    stage.sm.stop_pipeline_execution(PipelineExecutionArn=release, ClientRequestToken=str(uuid.uuid4()))
    stage.emulator.wait_idle()
    assert stage.status_of(release) == "Stopping"
    code, out, err = cli(capsys, "fail", "--execution-arn", release, "--step", "A", "--reason", "stopped by hand")
    assert (code, err) == (ExitCode.OK, "")
    wait_for_status(stage.sm, release, "Stopped")
