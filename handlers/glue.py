"""The ``glue`` handler: runs an AWS Glue job for the step and answers when the run ends.

Settings, arguments, outputs and stop behaviour are documented on :class:`GlueHandler`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callback_worker.handlers._aws import (
    JobRef,
    JobStatus,
    LazyClient,
    PollingJobHandler,
    PollingSettings,
    check_target,
)
from callback_worker.handlers._context import argument_text, preview, run_key, step_arguments
from callback_worker.handlers._settings import load_settings
from callback_worker.worker.handler import CallbackContext, Fail, OutputValue

if TYPE_CHECKING:
    from types_aiobotocore_glue import GlueClient
    from types_aiobotocore_glue.type_defs import JobRunTypeDef

JOB_NAME_ARGUMENT = "glue_job_name"
RUNNING = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
SUCCEEDED = "SUCCEEDED"
#: GetJobRuns answers at most this many runs per page.
PAGE_SIZE = 200
#: The job parameters AWS Glue itself reads (its documented special parameters, and the ones it sets internally), as
#: compared: lower case, without leading dashes. A step argument may never set one, nor any ``enable-*`` parameter.
RESERVED_ARGUMENTS = frozenset(
    name.lower()
    for name in (
        "job-language", "class", "scriptLocation", "script-location", "extra-py-files", "extra-jars",
        "user-jars-first", "use-postgres-driver", "extra-files", "job-bookmark-option", "TempDir", "RedshiftTempDir",
        "spark-event-logs-path", "additional-python-modules", "python-modules-installer-option", "library-set",
        "auto-scale-within-microbatch", "conf", "datalake-formats", "customer-driver-env-vars",
        "customer-executor-env-vars", "executor-env-vars", "executor-cores", "encryption-type", "disable-proxy",
        "disable-proxy-v2", "write-shuffle-files-to-s3", "write-shuffle-spills-to-s3", "continuous-log-logGroup",
        "continuous-log-logStreamPrefix", "continuous-log-conversionPattern", "pip-install", "s3-py-modules",
        "working-dir", "JOB_NAME", "JOB_ID", "JOB_RUN_ID", "SECURITY_CONFIGURATION", "debug", "mode",
    )
)  # fmt: skip
RESERVED_PREFIXES = ("enable-",)


class GlueSettings(PollingSettings):
    """Settings of the ``glue`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_GLUE_")

    job_name: Annotated[
        str | None, Field(default=None, min_length=1, max_length=255, description="The Glue job to run.")
    ]
    allow_job_name_argument: Annotated[
        bool, Field(default=False, description=f"Let the step argument '{JOB_NAME_ARGUMENT}' choose the job.")
    ]
    pass_arguments: Annotated[
        bool,
        Field(
            default=False,
            description="Pass each step argument to the run as --<name> (never one of the parameters Glue reserves).",
        ),
    ]
    run_key_argument: Annotated[
        str,
        Field(
            default="--callback-worker-run-key",
            pattern=r"^--[A-Za-z0-9_.-]{1,100}$",
            description="The job argument that marks a run as started for one callback step.",
        ),
    ]
    lookback_runs: Annotated[
        int, Field(default=100, ge=1, le=1000, description="How many recent runs are searched for a step's marker.")
    ]


class GlueHandler(PollingJobHandler):
    """The ``glue`` handler: runs an AWS Glue job for the step and answers when the run ends.

    Settings (environment, prefix ``CALLBACK_WORKER_GLUE_``):

    - ``JOB_NAME`` (unset by default): The Glue job to run. Unset: every step must name one in ``glue_job_name`` (and
      ``ALLOW_JOB_NAME_ARGUMENT``).
    - ``ALLOW_JOB_NAME_ARGUMENT`` (default ``false``): Let the step argument ``glue_job_name`` choose the job.
    - ``PASS_ARGUMENTS`` (default ``false``): Pass each step argument to the run as ``--<name>`` (strings as they are,
      other values as JSON). Off, step arguments (but ``glue_job_name``) are ignored.
    - ``RUN_KEY_ARGUMENT`` (default ``--callback-worker-run-key``): The job argument that marks a run as this step's.
    - ``LOOKBACK_RUNS`` (default ``100``): How many of the job's latest runs are searched for the marker (1 to 1000).
    - ``POLL_INTERVAL`` (default ``30``): Seconds between polls (1 to 43,200).
    - ``MAX_WAIT`` (default ``0``): Seconds after which a run still going is stopped and the step failed (0 = no limit).

    Step arguments: ``glue_job_name`` (when allowed); with ``PASS_ARGUMENTS`` all others (but the routing argument)
    become job arguments. **A step argument never sets a parameter AWS Glue reads itself**: a step whose arguments name
    one of Glue's special parameters — ``scriptLocation``, ``extra-py-files``, ``extra-jars``, ``extra-files``,
    ``additional-python-modules``, ``python-modules-installer-option``, ``conf``, ``TempDir``, ``job-language``,
    ``class``, ``JOB_NAME`` and the rest of ``RESERVED_ARGUMENTS`` — or any ``enable-*`` parameter, or the
    ``RUN_KEY_ARGUMENT`` marker, fails naming them, before anything is started. Names are compared ignoring case and
    leading dashes (``--Extra-Jars`` is ``extra-jars``). Such parameters belong in the job's definition
    (``DefaultArguments``, or ``NonOverridableArguments`` to keep even the job's own callers from changing them).

    Outputs: ``job_name``, ``job_run_id``, ``job_run_state`` (``SUCCEEDED``) and ``execution_time`` (seconds, when Glue
    reports it). A run that ends ``FAILED``, ``ERROR``, ``TIMEOUT``, ``STOPPED`` or ``EXPIRED`` fails the step with
    Glue's error message.

    **Idempotent start.** StartJobRun has no client token, so every run this handler starts carries the job argument
    ``--callback-worker-run-key=<SHA-256 of the token>``; before starting, the job's latest ``LOOKBACK_RUNS`` runs
    (GetJobRuns) are searched for that marker, and a run found is adopted instead of starting another. Two replicas
    racing on two copies of one message can still both start a run in the instant between search and start, unless the
    job's ``MaxConcurrentRuns`` is 1 (the default): the loser then gets ConcurrentRunsExceededException, searches again
    and adopts the winner's run. Glue scripts read only the arguments they ask for (``getResolvedOptions``), so the
    extra argument is harmless. A job already running ``MaxConcurrentRuns`` runs for other steps fails the step
    (ConcurrentRunsExceededException): raise the job's limit for pipelines that run in parallel.

    **Stopping.** ``on_stop`` finds the run by its marker (the Stopping message carries no state) and calls
    BatchStopJobRun; a run already finished is left alone.

    **Continuations.** A continuation's state names the run it polls (job name and run id); anyone who may send to the
    queue can write one, so a state whose job is not this step's (``JOB_NAME``, or ``glue_job_name`` when allowed)
    fails the step without a call to Glue, and a run whose marker is not this step's fails it before the run is
    answered from or stopped.

    Permissions: ``glue:StartJobRun``, ``glue:GetJobRun``, ``glue:GetJobRuns``, ``glue:BatchStopJobRun``. Tested against
    moto server (StartJobRun, GetJobRun, GetJobRuns; its runs only ever succeed) and against an HTTP-level stub of the
    Glue JSON protocol for failed runs and BatchStopJobRun, which moto does not implement.
    """

    label = "Glue job"

    def __init__(self) -> None:
        settings = load_settings(GlueSettings)
        super().__init__(settings)
        self.glue_settings = settings
        self._client: LazyClient[GlueClient] = LazyClient(
            lambda: get_session().create_client("glue", config=AioConfig(retries={"mode": "standard"}))
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def job_name(self, context: CallbackContext) -> str:
        """The job for this step: its ``glue_job_name`` argument when allowed, else the setting."""
        chosen = context.arguments.get(JOB_NAME_ARGUMENT)
        if chosen is not None and self.glue_settings.allow_job_name_argument:
            if not isinstance(chosen, str) or not chosen:
                raise Fail(f"the step argument {JOB_NAME_ARGUMENT!r} must be a non-empty string")
            return chosen
        return str(self.glue_settings.require("job_name"))

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (JOB_NAME_ARGUMENT,) if self.glue_settings.allow_job_name_argument else ()

    def run_arguments(self, context: CallbackContext) -> dict[str, str]:
        """The run's job arguments: with ``PASS_ARGUMENTS`` each step argument as ``--<name>``, then the marker.

        A step argument that names a parameter Glue reserves (or the marker) is a :class:`Fail` naming it.
        """
        marker = self.glue_settings.run_key_argument
        passed = step_arguments(context, exclude=self._overrides()) if self.glue_settings.pass_arguments else {}
        refused = [name for name in passed if reserved_argument(name, marker)]
        if refused:
            raise Fail(
                f"the step arguments {', '.join(map(repr, refused))} name job parameters AWS Glue reserves (or the "
                f"worker's marker {marker}); they are never passed to a run: set them on the Glue job instead"
            )
        arguments = {f"--{name}": argument_text(value) for name, value in passed.items()}
        arguments[marker] = run_key(context.token)
        return arguments

    async def launch(self, context: CallbackContext) -> JobRef:
        job = self.job_name(context)
        arguments = self.run_arguments(context)
        key = arguments[self.glue_settings.run_key_argument]
        found = await self._find_run(job, key)
        run_id = found["Id"] if found is not None else await self._start(job, key, arguments)
        return JobRef(run_id, job, time.time())

    async def verify(self, ref: JobRef, context: CallbackContext) -> None:
        """The state's job must be this step's; whose run it is, :meth:`poll` checks on the run's own record."""
        check_target("Glue job", ref.scope, self.job_name(context))

    async def find(self, context: CallbackContext) -> JobRef | None:
        job = self.job_name(context)
        found = await self._find_run(job, run_key(context.token))
        if found is None or found.get("JobRunState") not in RUNNING:
            return None
        return JobRef(found["Id"], job, time.time())

    async def poll(self, ref: JobRef, context: CallbackContext) -> JobStatus:
        client = await self._client.get()
        run = (await client.get_job_run(JobName=ref.scope, RunId=ref.id))["JobRun"]
        marker = self.glue_settings.run_key_argument
        if run.get("Arguments", {}).get(marker) != run_key(context.token):
            raise Fail(
                f"the continuation state names Glue job {ref.scope} run {preview(ref.id, 80)}, which this step did not "
                f"start (its {marker} is not this step's); it was neither answered from nor stopped"
            )
        state = str(run.get("JobRunState", "UNKNOWN"))
        if state in RUNNING:
            return JobStatus(state)
        if state == SUCCEEDED:
            return JobStatus(state, outputs=_outputs(ref, run))
        message = run.get("ErrorMessage") or "no error message"
        return JobStatus(state, failure=f"Glue job {ref.scope} run {ref.id} ended {state}: {message}")

    async def stop(self, ref: JobRef) -> None:
        client = await self._client.get()
        await client.batch_stop_job_run(JobName=ref.scope, JobRunIds=[ref.id])

    async def _start(self, job: str, key: str, arguments: dict[str, str]) -> str:
        client = await self._client.get()
        try:
            response = await client.start_job_run(JobName=job, Arguments=arguments)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConcurrentRunsExceededException":
                raise
            found = await self._find_run(job, key)  # another copy of this message won the race
            if found is None:
                raise
            return found["Id"]
        return response["JobRunId"]

    async def _find_run(self, job: str, key: str) -> JobRunTypeDef | None:
        """The most recent of the job's latest runs that carries ``key`` in its marker argument."""
        client = await self._client.get()
        marker = self.glue_settings.run_key_argument
        remaining = self.glue_settings.lookback_runs
        kwargs: dict[str, Any] = {}
        while remaining > 0:
            page = await client.get_job_runs(JobName=job, MaxResults=min(remaining, PAGE_SIZE), **kwargs)
            runs = page.get("JobRuns", [])
            for run in runs:
                if run.get("Arguments", {}).get(marker) == key:
                    return run
            remaining -= len(runs)
            if not runs or not page.get("NextToken"):
                return None
            kwargs["NextToken"] = page["NextToken"]
        return None


def reserved_argument(name: str, marker: str) -> bool:
    """Whether a step argument would set a parameter Glue reserves, or the marker (case and leading dashes ignored)."""
    bare = name.strip().lstrip("-").lower()
    return bare in RESERVED_ARGUMENTS or bare.startswith(RESERVED_PREFIXES) or bare == marker.lstrip("-").lower()


def _outputs(ref: JobRef, run: JobRunTypeDef) -> dict[str, OutputValue]:
    outputs: dict[str, OutputValue] = {"job_name": ref.scope, "job_run_id": ref.id, "job_run_state": SUCCEEDED}
    if "ExecutionTime" in run:
        outputs["execution_time"] = int(run["ExecutionTime"])
    return outputs
