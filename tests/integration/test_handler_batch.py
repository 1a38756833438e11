"""handlers/batch.py against moto server's docker-free Batch (jobs end at once) and an HTTP-level stub of the Batch
REST API (what moto cannot do here: jobs that keep running, TerminateJob on them)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from aiohttp import web

from callback_worker.handlers._context import run_key
from callback_worker.handlers.batch import BatchHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, Retry, StopHook
from tests.handler_support import (
    HANDLER_ARGUMENT,
    callback_context,
    clear_settings,
    handler_factory_fixture,
    moto_api,
    new_token,
    stub_endpoint,
)

PREFIX = "CALLBACK_WORKER_BATCH_"
HandlerFactory = Callable[..., BatchHandler]


def context(token: str, arguments: Mapping[str, JSONValue] | None = None, state: JSONValue = None) -> CallbackContext:
    return callback_context("batch", token, arguments, state)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT, "MOTO_SIMPLE_BATCH_FAIL_AFTER")


make_handler = handler_factory_fixture(BatchHandler, PREFIX)


# --- moto server -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_setup(moto_server: str) -> Iterator[tuple[str, str, Any]]:
    """A job queue and a job definition on moto's docker-free Batch: (queue, definition, boto3 client)."""
    moto_api(moto_server, "config", {"batch": {"use_docker": False}})
    role = boto3.client("iam", endpoint_url=moto_server).create_role(
        RoleName=f"batch-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    batch = boto3.client("batch", endpoint_url=moto_server)
    suffix = uuid.uuid4().hex[:8]
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"ce-{suffix}", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = f"q-{suffix}"
    batch.create_job_queue(
        jobQueueName=queue,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    definition = f"d-{suffix}"
    batch.register_job_definition(
        jobDefinitionName=definition,
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["true"]},
    )
    yield queue, definition, batch
    moto_api(moto_server, "config", {"batch": {"use_docker": True}})


@pytest.fixture
def moto_batch(
    batch_setup: tuple[str, str, Any], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", moto_server)
    return batch_setup


def jobs_named(batch: Any, queue: str, name: str) -> list[dict[str, Any]]:
    filters = [{"name": "JOB_NAME", "values": [name]}]
    return list(batch.list_jobs(jobQueue=queue, filters=filters)["jobSummaryList"])


async def test_a_job_that_succeeds_answers_with_its_outputs(
    moto_batch: tuple[str, str, Any], make_handler: HandlerFactory
) -> None:
    queue, definition, batch = moto_batch
    token = new_token()
    handler = make_handler(job_queue=queue, job_definition=definition)
    outputs = await handler(context(token, {"handler": "batch", "n": 5, "data-set": "s3://b/k"}))
    name = f"callback-{run_key(token)}"
    [job] = jobs_named(batch, queue, name)
    assert outputs == {"job_id": job["jobId"], "job_name": name, "job_status": "SUCCEEDED"}
    container = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["container"]
    environment = {pair["name"]: pair["value"] for pair in container["environment"]}
    assert environment["CALLBACK_ARG_N"] == "5"
    assert environment["CALLBACK_ARG_DATA_SET"] == "s3://b/k"
    assert environment["CALLBACK_PIPELINE_NAME"] == "p"
    assert "CALLBACK_ARG_HANDLER" not in environment


async def test_a_redelivered_first_call_adopts_the_job_it_submitted(
    moto_batch: tuple[str, str, Any], make_handler: HandlerFactory
) -> None:
    queue, definition, batch = moto_batch
    token = new_token()
    first = await make_handler(job_queue=queue, job_definition=definition)(context(token))
    again = await make_handler(job_queue=queue, job_definition=definition)(context(token))
    assert first == again
    assert len(jobs_named(batch, queue, f"callback-{run_key(token)}")) == 1


async def test_a_failed_job_fails_the_step(
    moto_batch: tuple[str, str, Any], make_handler: HandlerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, definition, _ = moto_batch
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # read by moto's docker-free Batch in this process
    token = new_token()
    with pytest.raises(Fail, match=rf"^Batch job callback-{run_key(token)} \([0-9a-f-]+\) FAILED: no status reason$"):
        await make_handler(job_queue=queue, job_definition=definition)(context(token))


async def test_an_unknown_queue_fails_the_step(moto_batch: tuple[str, str, Any], make_handler: HandlerFactory) -> None:
    _, definition, _ = moto_batch
    with pytest.raises(Fail, match="Batch job: ClientException: Job queue nope does not exist"):
        await make_handler(job_queue="nope", job_definition=definition)(context(new_token()))


async def test_overrides_are_used_only_when_allowed(
    moto_batch: tuple[str, str, Any], make_handler: HandlerFactory
) -> None:
    queue, definition, batch = moto_batch
    arguments: dict[str, JSONValue] = {"batch_job_queue": queue, "batch_job_definition": definition, "x": "1"}
    with pytest.raises(Fail, match="set CALLBACK_WORKER_BATCH_JOB_QUEUE"):
        await make_handler()(context(new_token(), arguments))
    token = new_token()
    outputs = await make_handler(allow_overrides="true", job_name_prefix="pipeline_")(context(token, arguments))
    assert isinstance(outputs, dict)
    assert outputs["job_name"] == f"pipeline_{run_key(token)}"
    container = batch.describe_jobs(jobs=[outputs["job_id"]])["jobs"][0]["container"]
    names = {pair["name"] for pair in container["environment"]}
    assert "CALLBACK_ARG_X" in names
    assert "CALLBACK_ARG_BATCH_JOB_QUEUE" not in names


# --- HTTP-level stub of the Batch REST API -----------------------------------------------------------------------


class BatchStub:
    """SubmitJob, ListJobs, DescribeJobs and TerminateJob over Batch's REST-JSON protocol, scripted by the test."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.script: list[dict[str, Any]] = []
        """What the next DescribeJobs calls report about the job (merged into it), in turn."""
        self.terminated: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        operation = request.match_info["operation"]
        answer = getattr(self, operation)(body)
        return web.json_response(answer)

    def submitjob(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        self.jobs[job_id] = {
            "jobId": job_id,
            "jobName": body["jobName"],
            "jobQueue": body["jobQueue"],
            "status": "SUBMITTED",
            "createdAt": int(time.time() * 1000),
            "container": {"environment": body.get("containerOverrides", {}).get("environment", [])},
        }
        return {"jobId": job_id, "jobName": body["jobName"], "jobArn": f"arn:aws:batch:us-east-1:1:job/{job_id}"}

    def listjobs(self, body: dict[str, Any]) -> dict[str, Any]:
        [wanted] = body["filters"][0]["values"]
        summaries = [
            {key: job[key] for key in ("jobId", "jobName", "status", "createdAt")}
            for job in self.jobs.values()
            if job["jobName"] == wanted and job["jobQueue"] == body["jobQueue"]
        ]
        return {"jobSummaryList": summaries}

    def describejobs(self, body: dict[str, Any]) -> dict[str, Any]:
        found = [self.jobs[job_id] for job_id in body["jobs"] if job_id in self.jobs]
        if found and self.script:
            found[0].update(self.script.pop(0))
        return {"jobs": found}

    def terminatejob(self, body: dict[str, Any]) -> dict[str, Any]:
        self.terminated.append((body["jobId"], body["reason"]))
        return {}


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BatchStub]:
    batch_stub = BatchStub()
    async with stub_endpoint(monkeypatch, "AWS_ENDPOINT_URL_BATCH", "/v1/{operation}", batch_stub.handle):
        yield batch_stub


def only_job(stub: BatchStub) -> dict[str, Any]:
    [job] = stub.jobs.values()
    return job


async def test_a_running_job_is_polled_until_it_succeeds(stub: BatchStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_queue="q", job_definition="d", poll_interval="120")
    token = new_token()
    stub.script = [{"status": "RUNNABLE"}, {"status": "RUNNING"}, {"status": "SUCCEEDED", "container": {"exitCode": 0}}]
    first = await handler(context(token))
    assert isinstance(first, Retry)
    assert first.delay == 120
    second = await handler(context(token, state=first.state))
    assert isinstance(second, Retry)
    assert second.state == first.state
    outputs = await handler(context(token, state=second.state))
    job = only_job(stub)
    assert outputs == {"job_id": job["jobId"], "job_name": f"callback-{run_key(token)}", "job_status": "SUCCEEDED"} | {
        "exit_code": 0
    }


async def test_a_failed_job_reports_reason_and_exit_code(stub: BatchStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_queue="q", job_definition="d")
    token = new_token()
    failed = {"status": "FAILED", "statusReason": "Essential container in task exited"}
    stub.script = [failed | {"container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed"}}]
    with pytest.raises(Fail) as caught:
        await handler(context(token))
    job = only_job(stub)
    assert caught.value.reason == (
        f"Batch job callback-{run_key(token)} ({job['jobId']}) FAILED: Essential container in task exited; "
        "exit code 137; OutOfMemoryError: Container killed"
    )


async def test_on_stop_terminates_the_steps_job_found_by_name(stub: BatchStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_queue="q", job_definition="d")
    assert isinstance(handler, StopHook)
    token = new_token()
    await handler(context(token))
    await handler(context(new_token()))
    await handler.on_stop(context(token))
    mine = next(job["jobId"] for job in stub.jobs.values() if job["jobName"] == f"callback-{run_key(token)}")
    assert stub.terminated == [(mine, "The SageMaker pipeline execution is stopping.")]


async def test_on_stop_leaves_a_finished_job_alone(stub: BatchStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_queue="q", job_definition="d")
    token = new_token()
    stub.script = [{"status": "SUCCEEDED"}]
    await handler(context(token))
    await handler.on_stop(context(token))
    await handler.on_stop(context(new_token()))
    assert stub.terminated == []


async def test_a_job_past_max_wait_is_terminated_and_fails_naming_the_setting(
    stub: BatchStub, make_handler: HandlerFactory
) -> None:
    handler = make_handler(job_queue="q", job_definition="d", max_wait="600")
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    assert isinstance(first.state, dict)
    stub.script = [{"status": "RUNNING"}]
    overdue = {**first.state, "started": time.time() - 700}
    with pytest.raises(Fail, match=r"still RUNNING after 700 s \(CALLBACK_WORKER_BATCH_MAX_WAIT=600\)"):
        await handler(context(token, state=overdue))
    assert [job_id for job_id, _ in stub.terminated] == [only_job(stub)["jobId"]]


async def test_a_job_batch_has_forgotten_fails_the_step(stub: BatchStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_queue="q", job_definition="d")
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    stub.describejobs = lambda body: {"jobs": []}  # type: ignore[method-assign]
    with pytest.raises(Fail, match=f"Batch job {only_job(stub)['jobId']} is unknown to Batch"):
        await handler(context(token, state=first.state))


async def test_a_continuation_looks_its_job_up_once_per_handler(stub: BatchStub, make_handler: HandlerFactory) -> None:
    token = new_token()
    first = await make_handler(job_queue="q", job_definition="d")(context(token))
    assert isinstance(first, Retry)
    listed: list[dict[str, Any]] = []
    list_jobs = stub.listjobs

    def counted(body: dict[str, Any]) -> dict[str, Any]:
        listed.append(body)
        return list_jobs(body)

    stub.listjobs = counted  # type: ignore[method-assign]
    stub.script = [{"status": "RUNNING"}]
    replica = make_handler(job_queue="q", job_definition="d")
    for _ in range(3):
        assert isinstance(await replica(context(token, state=first.state)), Retry)
    assert len(listed) == 1  # the job's name is checked once, then remembered
    assert listed[0]["filters"] == [{"name": "JOB_NAME", "values": [f"callback-{run_key(token)}"]}]


async def test_arguments_are_not_passed_when_turned_off(stub: BatchStub, make_handler: HandlerFactory) -> None:
    await make_handler(job_queue="q", job_definition="d", pass_arguments="false")(context(new_token(), {"x": 1}))
    assert only_job(stub)["container"] == {"environment": []}


@pytest.mark.parametrize(
    ("name", "value"),
    [("JOB_NAME_PREFIX", "-starts-with-dash"), ("JOB_NAME_PREFIX", "x" * 65), ("JOB_QUEUE", ""), ("MAX_WAIT", "1e9")],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}{name}="):
        BatchHandler()
