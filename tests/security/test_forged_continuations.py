"""Finding 2 (medium-high): a forged continuation state steered the job handlers to another job.

Anyone who may send to the queue can write ``callbackWorkerContinuation.state``, which reaches the handler as
``context.state``. Before: ``glue``, ``batch`` and ``stepfunctions`` polled whatever job the state named — answering
the step with another job's outputs — and stopped it once ``MAX_WAIT`` had passed by the state's own clock, whatever
their settings (``JOB_NAME``, ``JOB_QUEUE``, ``STATE_MACHINE_ARN`` and the ``ALLOW_*`` switches) allowed. Now the
state's target must be the step's own — the configured (or allowed) job, queue or state machine, and the run marker,
job name or execution name derived from the token — before it is polled or stopped; ``on_stop`` checks a state it gets
too. A mismatch fails the step, naming it.

Each test sends the state an attacker would and records every AWS call the handlers make (botocore's
``before-parameter-build`` event on the handlers' own sessions): the foreign job is never stopped, and where the
mismatch is visible without asking AWS (another job, queue or state machine, another execution's ARN) never called at
all. Runs against moto server, with the fixtures and helpers of tests/integration/test_handler_{glue,batch,
stepfunctions}.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session

import callback_worker.handlers.batch
import callback_worker.handlers.glue
import callback_worker.handlers.stepfunctions
from callback_worker.handlers.batch import BatchHandler
from callback_worker.handlers.glue import GlueHandler
from callback_worker.handlers.stepfunctions import StepFunctionsHandler
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue, Retry
from tests.handler_support import HANDLER_ARGUMENT, callback_context, clear_settings, handler_factory_fixture, new_token
from tests.integration import test_handler_batch as batch_tests
from tests.integration import test_handler_glue as glue_tests
from tests.integration import test_handler_stepfunctions as sfn_tests

Calls = list[tuple[str, dict[str, Any]]]
AN_HOUR_AGO = time.time() - 3600

glue = glue_tests.glue
step_by_step = glue_tests.step_by_step
batch_setup = batch_tests.batch_setup
moto_batch = batch_tests.moto_batch
sfn = sfn_tests.sfn
make_glue = handler_factory_fixture(GlueHandler, "CALLBACK_WORKER_GLUE_")
make_batch = handler_factory_fixture(BatchHandler, "CALLBACK_WORKER_BATCH_")
make_sfn = handler_factory_fixture(StepFunctionsHandler, "CALLBACK_WORKER_STEPFUNCTIONS_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, "CALLBACK_WORKER_GLUE_", HANDLER_ARGUMENT, "MOTO_SIMPLE_BATCH_FAIL_AFTER")
    clear_settings(monkeypatch, "CALLBACK_WORKER_BATCH_")
    clear_settings(monkeypatch, "CALLBACK_WORKER_STEPFUNCTIONS_")


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS call the three handlers make from now on: (operation, parameters), recorded before it is sent."""
    calls: Calls = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, dict(params)))

    def recording_session() -> AioSession:
        session = get_session()
        session.register("before-parameter-build", record)
        return session

    for module in (
        callback_worker.handlers.glue,
        callback_worker.handlers.batch,
        callback_worker.handlers.stepfunctions,
    ):
        monkeypatch.setattr(module, "get_session", recording_session)
    return calls


def naming(calls: Calls, target: str) -> list[str]:
    """The operations whose parameters mention ``target``."""
    return [operation for operation, params in calls if target in json.dumps(params, default=str)]


def forged(job_id: str, scope: str) -> JSONValue:
    """The state an attacker writes: another job, and a start long ago so that ``MAX_WAIT`` stops it at once."""
    return {"id": job_id, "scope": scope, "started": AN_HOUR_AGO}


def context(handler: str, state: JSONValue, arguments: dict[str, JSONValue] | None = None) -> CallbackContext:
    return callback_context(handler, new_token(), arguments, state)


def state_of(result: object) -> dict[str, JSONValue]:
    assert isinstance(result, Retry)
    assert isinstance(result.state, dict)
    return result.state


# --- glue --------------------------------------------------------------------------------------------------------


async def test_glue_a_state_naming_another_job_fails_without_a_call(
    glue: Any, make_glue: Callable[..., GlueHandler], api_calls: Calls
) -> None:
    victim, mine = await glue_tests.create_job(glue), await glue_tests.create_job(glue)
    victim_run = (await glue.start_job_run(JobName=victim))["JobRunId"]
    handler = make_glue(job_name=mine, max_wait="60")
    with pytest.raises(Fail, match=re.escape(f"names Glue job {victim!r}, not this step's {mine!r}")):
        await handler(context("glue", forged(victim_run, victim)))
    assert api_calls == []


async def test_glue_a_state_naming_another_job_than_the_allowed_argument_fails(
    glue: Any, make_glue: Callable[..., GlueHandler], api_calls: Calls
) -> None:
    victim, chosen = await glue_tests.create_job(glue), await glue_tests.create_job(glue)
    victim_run = (await glue.start_job_run(JobName=victim))["JobRunId"]
    handler = make_glue(allow_job_name_argument="true", max_wait="60")
    with pytest.raises(Fail, match=re.escape(f"names Glue job {victim!r}, not this step's {chosen!r}")):
        await handler(context("glue", forged(victim_run, victim), {"glue_job_name": chosen}))
    assert api_calls == []


async def test_glue_another_steps_run_of_the_job_is_neither_answered_from_nor_stopped(
    glue: Any, make_glue: Callable[..., GlueHandler], step_by_step: None, api_calls: Calls
) -> None:
    job = await glue_tests.create_job(glue)
    victim_run = str(state_of(await make_glue(job_name=job)(context("glue", None)))["id"])
    api_calls.clear()
    with pytest.raises(Fail, match=re.escape(f"run {victim_run!r}, which this step did not start")):
        await make_glue(job_name=job, max_wait="60")(context("glue", forged(victim_run, job)))
    assert naming(api_calls, victim_run) == ["GetJobRun"]


# --- batch -------------------------------------------------------------------------------------------------------


async def test_batch_a_state_naming_another_queue_fails_without_a_call(
    moto_batch: tuple[str, str, Any], make_batch: Callable[..., BatchHandler], api_calls: Calls
) -> None:
    queue, definition, _ = moto_batch
    handler = make_batch(job_queue=queue, job_definition=definition, max_wait="60")
    with pytest.raises(Fail, match=re.escape(f"names Batch job queue 'victim-queue', not this step's {queue!r}")):
        await handler(context("batch", forged("0b9e5a4e-7d21-4a43-9c8e-3d0f3c1b2a10", "victim-queue")))
    assert api_calls == []


async def test_batch_another_steps_job_in_the_queue_is_never_described_or_terminated(
    moto_batch: tuple[str, str, Any], make_batch: Callable[..., BatchHandler], api_calls: Calls
) -> None:
    queue, definition, _ = moto_batch
    victim = await make_batch(job_queue=queue, job_definition=definition)(context("batch", None))
    assert isinstance(victim, dict)
    victim_job = str(victim["job_id"])
    api_calls.clear()
    handler = make_batch(job_queue=queue, job_definition=definition, max_wait="60")
    with pytest.raises(Fail, match=re.escape(f"names Batch job {victim_job!r}, which is not this step's job")):
        await handler(context("batch", forged(victim_job, queue)))
    assert [operation for operation, _ in api_calls] == ["ListJobs"]
    assert naming(api_calls, victim_job) == []


# --- stepfunctions -----------------------------------------------------------------------------------------------


async def test_sfn_a_state_naming_another_machines_execution_fails_and_it_keeps_running(
    sfn: Any, make_sfn: Callable[..., StepFunctionsHandler], api_calls: Calls
) -> None:
    victim, mine = (
        await sfn_tests.state_machine(sfn, sfn_tests.WAIT_LONG),
        await sfn_tests.state_machine(sfn, sfn_tests.WAIT_LONG),
    )
    execution = str(state_of(await make_sfn(state_machine_arn=victim)(context("stepfunctions", None)))["id"])
    api_calls.clear()
    handler = make_sfn(state_machine_arn=mine, max_wait="60")
    with pytest.raises(Fail, match=re.escape(f"names state machine {victim!r}, not this step's {mine!r}")):
        await handler(context("stepfunctions", forged(execution, victim)))
    assert api_calls == []
    assert (await sfn.describe_execution(executionArn=execution))["status"] == "RUNNING"


async def test_sfn_a_state_naming_another_steps_execution_of_the_machine_fails_without_a_call(
    sfn: Any, make_sfn: Callable[..., StepFunctionsHandler], api_calls: Calls
) -> None:
    machine = await sfn_tests.state_machine(sfn, sfn_tests.WAIT_LONG)
    victim = str(state_of(await make_sfn(state_machine_arn=machine)(context("stepfunctions", None)))["id"])
    api_calls.clear()
    handler = make_sfn(allow_state_machine_argument="true", max_wait="60")
    arguments: dict[str, JSONValue] = {"state_machine_arn": machine}
    with pytest.raises(Fail, match=re.escape(f"names execution {victim!r}, not this step's")):
        await handler(context("stepfunctions", forged(victim, machine), arguments))
    assert api_calls == []
    assert (await sfn.describe_execution(executionArn=victim))["status"] == "RUNNING"


async def test_sfn_on_stop_with_a_forged_state_fails_and_stops_nothing(
    sfn: Any, make_sfn: Callable[..., StepFunctionsHandler], api_calls: Calls
) -> None:
    machine = await sfn_tests.state_machine(sfn, sfn_tests.WAIT_LONG)
    victim = str(state_of(await make_sfn(state_machine_arn=machine)(context("stepfunctions", None)))["id"])
    api_calls.clear()
    with pytest.raises(Fail, match=re.escape(f"names execution {victim!r}")):
        await make_sfn(state_machine_arn=machine).on_stop(context("stepfunctions", forged(victim, machine)))
    assert api_calls == []
    assert (await sfn.describe_execution(executionArn=victim))["status"] == "RUNNING"
