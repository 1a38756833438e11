"""handlers/glue.py against moto server (start, poll, find by marker) and an HTTP-level Glue stub (what moto lacks:
failed runs, BatchStopJobRun, the start race)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiohttp import web

from callback_worker.handlers._context import run_key
from callback_worker.handlers.glue import GlueHandler
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, Retry, StopHook
from tests.handler_support import (
    HANDLER_ARGUMENT,
    callback_context,
    clear_settings,
    handler_factory_fixture,
    moto_api_async,
    new_token,
    stub_endpoint,
)

PREFIX = "CALLBACK_WORKER_GLUE_"
MARKER = "--callback-worker-run-key"
HandlerFactory = Callable[..., GlueHandler]


def context(token: str, arguments: Mapping[str, JSONValue] | None = None, state: JSONValue = None) -> CallbackContext:
    return callback_context("glue", token, arguments, state)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


make_handler = handler_factory_fixture(GlueHandler, PREFIX)


# --- moto server -------------------------------------------------------------------------------------------------


@pytest.fixture
async def glue(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A Glue client on the session's moto server; ``AWS_ENDPOINT_URL_GLUE`` points there too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", moto_server)
    async with get_session().create_client("glue", endpoint_url=moto_server) as client:
        yield client


async def set_run_transition(moto_url: str, transition: dict[str, Any] | None) -> None:
    """Make moto's job runs advance one state per GetJobRun (``manual``), or restore its default (at once)."""
    path, body = ("set-transition", {"model_name": "glue::job_run", "transition": transition})
    if transition is None:
        path, body = ("unset-transition", {"model_name": "glue::job_run"})
    await moto_api_async(moto_url, f"state-manager/{path}", body)


@pytest.fixture
async def step_by_step(moto_server: str) -> AsyncIterator[None]:
    await set_run_transition(moto_server, {"progression": "manual", "times": 1})
    try:
        yield
    finally:
        await set_run_transition(moto_server, None)


async def create_job(glue: Any) -> str:
    name = f"job-{uuid.uuid4().hex[:8]}"
    await glue.create_job(Name=name, Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl"})
    return name


async def test_a_run_that_succeeds_at_once_answers_with_its_outputs(glue: Any, make_handler: HandlerFactory) -> None:
    job = await create_job(glue)
    token = new_token()
    handler = make_handler(job_name=job, pass_arguments="true")
    outputs = await handler(context(token, {"handler": "glue", "n": 5, "path": "s3://b/k"}))
    runs = (await glue.get_job_runs(JobName=job))["JobRuns"]
    assert len(runs) == 1
    assert outputs == {
        "job_name": job,
        "job_run_id": runs[0]["Id"],
        "job_run_state": "SUCCEEDED",
        "execution_time": runs[0]["ExecutionTime"],
    }
    assert runs[0]["Arguments"] == {"--n": "5", "--path": "s3://b/k", MARKER: run_key(token)}


async def test_a_running_job_is_polled_through_retry_continuations(
    glue: Any, make_handler: HandlerFactory, step_by_step: None
) -> None:
    job = await create_job(glue)
    handler = make_handler(job_name=job, poll_interval="45")
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    assert first.delay == 45
    assert isinstance(first.state, dict)
    assert first.state["scope"] == job
    second = await handler(context(token, state=first.state))
    assert isinstance(second, dict)
    assert second["job_run_id"] == first.state["id"]
    assert len((await glue.get_job_runs(JobName=job))["JobRuns"]) == 1


async def test_a_redelivered_first_call_adopts_the_run_it_started(
    glue: Any, make_handler: HandlerFactory, step_by_step: None
) -> None:
    job = await create_job(glue)
    token = new_token()
    first = await make_handler(job_name=job)(context(token))
    again = await make_handler(job_name=job)(context(token))  # a fresh replica, the same message, no state
    other = await make_handler(job_name=job)(context(new_token()))
    assert isinstance(first, Retry)
    assert isinstance(first.state, dict)
    assert run_id_of(again) == first.state["id"]
    runs = (await glue.get_job_runs(JobName=job))["JobRuns"]
    assert sorted(run["Id"] for run in runs) == sorted([first.state["id"], run_id_of(other)])


def run_id_of(result: object) -> str:
    """The run a handler call answered about, whether it is still running (Retry) or done (outputs)."""
    if isinstance(result, Retry):
        assert isinstance(result.state, dict)
        return str(result.state["id"])
    assert isinstance(result, dict)
    return str(result["job_run_id"])


async def test_an_unknown_job_fails_the_step(glue: Any, make_handler: HandlerFactory) -> None:
    with pytest.raises(Fail, match="Glue job: EntityNotFoundException"):
        await make_handler(job_name="no-such-job")(context(new_token()))


async def test_the_job_name_argument_is_used_only_when_allowed(glue: Any, make_handler: HandlerFactory) -> None:
    job = await create_job(glue)
    arguments: dict[str, JSONValue] = {"glue_job_name": job, "x": "1"}
    with pytest.raises(Fail, match="set CALLBACK_WORKER_GLUE_JOB_NAME"):
        await make_handler()(context(new_token(), arguments))
    allowed = make_handler(allow_job_name_argument="true", pass_arguments="true")
    outputs = await allowed(context(new_token(), arguments))
    assert isinstance(outputs, dict)
    assert outputs["job_name"] == job
    run = (await glue.get_job_runs(JobName=job))["JobRuns"][0]
    assert "--glue_job_name" not in run["Arguments"]
    assert run["Arguments"]["--x"] == "1"


@pytest.mark.parametrize("settings", [{}, {"pass_arguments": "false"}], ids=["by-default", "turned-off"])
async def test_arguments_are_not_passed_unless_turned_on(
    glue: Any, make_handler: HandlerFactory, settings: dict[str, str]
) -> None:
    job = await create_job(glue)
    token = new_token()
    await make_handler(job_name=job, **settings)(context(token, {"n": 5, "extra-jars": "s3://b/evil.jar"}))
    run = (await glue.get_job_runs(JobName=job))["JobRuns"][0]
    assert run["Arguments"] == {MARKER: run_key(token)}


# --- HTTP-level stub of the Glue JSON protocol -------------------------------------------------------------------


class GlueStub:
    """StartJobRun, GetJobRun, GetJobRuns and BatchStopJobRun over Glue's JSON 1.1 protocol, scripted by the test."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.script: list[str] = []
        """States the next GetJobRun calls report, in turn; empty: the run's current state."""
        self.calls: list[str] = []
        self.stopped: list[str] = []
        self.hide_runs_once = False
        self.concurrent_limit = False

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.headers["X-Amz-Target"].split(".")[-1]
        self.calls.append(operation)
        body = await request.json()
        answer = getattr(self, operation.lower())(body)
        if isinstance(answer, web.Response):
            return answer
        return web.json_response(answer, content_type="application/x-amz-json-1.1")

    def startjobrun(self, body: dict[str, Any]) -> dict[str, Any] | web.Response:
        if self.concurrent_limit and self.runs:
            return error("ConcurrentRunsExceededException", "Concurrent runs exceeded for job")
        run_id = f"jr_{uuid.uuid4().hex}"
        self.runs[run_id] = {
            "Id": run_id,
            "JobName": body["JobName"],
            "Arguments": body.get("Arguments", {}),
            "JobRunState": "STARTING",
            "StartedOn": time.time(),
        }
        return {"JobRunId": run_id}

    def getjobrun(self, body: dict[str, Any]) -> dict[str, Any] | web.Response:
        run = self.runs.get(body["RunId"])
        if run is None:
            return error("EntityNotFoundException", "no such run")
        if self.script:
            run["JobRunState"] = self.script.pop(0)
            if run["JobRunState"] == "FAILED":
                run["ErrorMessage"] = "ZeroDivisionError: division by zero"
        return {"JobRun": run}

    def getjobruns(self, body: dict[str, Any]) -> dict[str, Any] | web.Response:
        if self.hide_runs_once:
            self.hide_runs_once = False
            return {"JobRuns": []}
        return {"JobRuns": sorted(self.runs.values(), key=lambda run: -float(run["StartedOn"]))}

    def batchstopjobrun(self, body: dict[str, Any]) -> dict[str, Any]:
        for run_id in body["JobRunIds"]:
            self.stopped.append(run_id)
            self.runs[run_id]["JobRunState"] = "STOPPING"
        return {"SuccessfulSubmissions": [{"JobName": body["JobName"], "JobRunId": i} for i in body["JobRunIds"]]}


def error(code: str, message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"__type": code, "message": message}, status=status, content_type="application/x-amz-json-1.1"
    )


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GlueStub]:
    glue_stub = GlueStub()
    async with stub_endpoint(monkeypatch, "AWS_ENDPOINT_URL_GLUE", "/", glue_stub.handle):
        yield glue_stub


async def test_a_failed_run_fails_the_step_with_glues_message(stub: GlueStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_name="etl")
    stub.script = ["RUNNING", "FAILED"]
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    with pytest.raises(Fail) as caught:
        await handler(context(token, state=first.state))
    assert caught.value.reason == (
        f"Glue job etl run {next(iter(stub.runs))} ended FAILED: ZeroDivisionError: division by zero"
    )


async def test_a_run_past_max_wait_is_stopped_and_fails_naming_the_setting(
    stub: GlueStub, make_handler: HandlerFactory
) -> None:
    handler = make_handler(job_name="etl", max_wait="60")
    token = new_token()
    first = await handler(context(token))
    assert isinstance(first, Retry)
    assert isinstance(first.state, dict)
    state = {**first.state, "started": time.time() - 61}
    stub.script = ["RUNNING"]
    with pytest.raises(Fail, match=r"still RUNNING after 61 s \(CALLBACK_WORKER_GLUE_MAX_WAIT=60\); it was asked to"):
        await handler(context(token, state=state))
    assert stub.stopped == [first.state["id"]]


async def test_on_stop_finds_the_run_by_its_marker_and_stops_it(stub: GlueStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_name="etl")
    assert isinstance(handler, StopHook)
    token = new_token()
    await handler(context(token))
    await handler(context(new_token()))  # another step's run is left alone
    await handler.on_stop(context(token))
    mine = next(run["Id"] for run in stub.runs.values() if run["Arguments"][MARKER] == run_key(token))
    assert stub.stopped == [mine]


async def test_on_stop_leaves_a_finished_run_alone(stub: GlueStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_name="etl")
    token = new_token()
    stub.script = ["SUCCEEDED"]
    assert isinstance(await handler(context(token)), dict)
    await handler.on_stop(context(token))
    await handler.on_stop(context(new_token()))  # a step that never started a run
    assert stub.stopped == []


async def test_a_lost_start_race_adopts_the_winners_run(stub: GlueStub, make_handler: HandlerFactory) -> None:
    handler = make_handler(job_name="etl")
    token = new_token()
    stub.concurrent_limit = True
    winner = await handler(context(token))
    assert isinstance(winner, Retry)
    stub.hide_runs_once = True  # the loser's search ran before the winner's start became visible
    loser = await handler(context(token))
    assert isinstance(loser, Retry)
    assert isinstance(winner.state, dict)
    assert isinstance(loser.state, dict)
    assert loser.state["id"] == winner.state["id"]
    assert len(stub.runs) == 1
    assert stub.calls.count("StartJobRun") == 2


async def test_state_from_another_handler_fails_clearly(stub: GlueStub, make_handler: HandlerFactory) -> None:
    with pytest.raises(Fail, match="is not this handler's"):
        await make_handler(job_name="etl")(context(new_token(), state="waiting"))


async def test_throttling_is_raised_for_the_worker_to_retry(
    stub: GlueStub, make_handler: HandlerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    handler = make_handler(job_name="etl")
    stub.getjobruns = lambda body: error("ThrottlingException", "Rate exceeded")  # type: ignore[method-assign]
    with pytest.raises(Exception, match="ThrottlingException") as caught:
        await handler(context(new_token()))
    assert not isinstance(caught.value, Fail)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_INTERVAL", "0.5"),
        ("MAX_WAIT", "-1"),
        ("LOOKBACK_RUNS", "5000"),
        ("RUN_KEY_ARGUMENT", "no-dashes"),
        ("JOB_NAME", ""),
        ("PASS_ARGUMENTS", "maybe"),
    ],
)
def test_bad_settings_fail_construction_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"{PREFIX}{name}", value)
    with pytest.raises(ConfigurationError, match=f"invalid setting {PREFIX}{name}="):
        GlueHandler()
