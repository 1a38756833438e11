"""Finding 1 (high): step arguments could set the job parameters AWS Glue reads itself.

Before: ``CALLBACK_WORKER_GLUE_PASS_ARGUMENTS`` defaulted to ``true`` and every step argument became ``--<name>`` on
the run, so any message could set ``--scriptLocation``, ``--extra-py-files``, ``--additional-python-modules``,
``--extra-jars``, ``--conf``, ``--TempDir``… and run code of its choosing with the job's role. Now passing arguments
is opt-in, and even when on, a step argument naming a parameter Glue reserves (any case, any leading dashes, every
``enable-*``, and the worker's own marker) fails the step before anything is started.

Runs against moto server's Glue, like tests/integration/test_handler_glue.py, whose fixtures these tests reuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from callback_worker.handlers._context import run_key
from callback_worker.handlers.glue import GlueHandler, GlueSettings
from callback_worker.worker.handler import CallbackContext, Fail, JSONValue
from tests.handler_support import HANDLER_ARGUMENT, callback_context, clear_settings, handler_factory_fixture, new_token
from tests.integration import test_handler_glue as glue_tests

PREFIX = "CALLBACK_WORKER_GLUE_"
MARKER = "--callback-worker-run-key"
HandlerFactory = Callable[..., GlueHandler]

glue = glue_tests.glue
make_handler = handler_factory_fixture(GlueHandler, PREFIX)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch, PREFIX, HANDLER_ARGUMENT)


def context(token: str, arguments: Mapping[str, JSONValue]) -> CallbackContext:
    return callback_context("glue", token, arguments)


async def runs_of(glue: Any, job: str) -> list[dict[str, Any]]:
    return list((await glue.get_job_runs(JobName=job))["JobRuns"])


def test_passing_arguments_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GlueSettings().pass_arguments is False
    assert "``PASS_ARGUMENTS`` (default ``false``)" in str(GlueHandler.__doc__)


async def test_step_arguments_do_not_reach_the_run_by_default(glue: Any, make_handler: HandlerFactory) -> None:
    job = await glue_tests.create_job(glue)
    token = new_token()
    arguments: dict[str, JSONValue] = {"n": 5, "extra-py-files": "s3://attacker/payload.py"}
    await make_handler(job_name=job)(context(token, arguments))
    [run] = await runs_of(glue, job)
    assert run["Arguments"] == {MARKER: run_key(token)}


@pytest.mark.parametrize(
    "name",
    [
        "scriptLocation",
        "script-location",
        "--extra-py-files",
        "Extra-Jars",
        "extra-files",
        "additional-python-modules",
        "python-modules-installer-option",
        "conf",
        "TempDir",
        "--tempdir",
        "user-jars-first",
        "job-language",
        "class",
        "JOB_NAME",
        "job-bookmark-option",
        "datalake-formats",
        "customer-driver-env-vars",
        "executor-env-vars",
        "continuous-log-logGroup",
        "enable-glue-datacatalog",
        "Enable-Spark-UI",
        "enable-a-parameter-glue-adds-later",
        "callback-worker-run-key",
    ],
)
async def test_a_reserved_parameter_fails_the_step_and_starts_nothing(
    glue: Any, make_handler: HandlerFactory, name: str
) -> None:
    job = await glue_tests.create_job(glue)
    handler = make_handler(job_name=job, pass_arguments="true")
    with pytest.raises(Fail, match=re.escape(f"the step arguments {name!r} name job parameters AWS Glue reserves")):
        await handler(context(new_token(), {"n": 5, name: "s3://attacker/payload"}))
    assert await runs_of(glue, job) == []


async def test_every_reserved_parameter_is_named_and_no_other(glue: Any, make_handler: HandlerFactory) -> None:
    job = await glue_tests.create_job(glue)
    arguments: dict[str, JSONValue] = {"n": 5, "conf": "spark.x=1", "input": "s3://b/k", "--extra-jars": "s3://j"}
    with pytest.raises(Fail) as caught:
        await make_handler(job_name=job, pass_arguments="true")(context(new_token(), arguments))
    assert caught.value.reason.startswith("the step arguments 'conf', '--extra-jars' name job parameters")
    assert "'input'" not in caught.value.reason


async def test_ordinary_arguments_still_pass_when_turned_on(glue: Any, make_handler: HandlerFactory) -> None:
    job = await glue_tests.create_job(glue)
    token = new_token()
    arguments: dict[str, JSONValue] = {"n": 5, "input-path": "s3://b/k", "enabled": True, "classes": [1, 2]}
    await make_handler(job_name=job, pass_arguments="true")(context(token, arguments))
    [run] = await runs_of(glue, job)
    assert run["Arguments"] == {
        "--n": "5",
        "--input-path": "s3://b/k",
        "--enabled": "true",
        "--classes": "[1,2]",
        MARKER: run_key(token),
    }
