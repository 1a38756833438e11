"""The ``batch`` handler: submits an AWS Batch job for the step and answers when the job ends.

Settings, arguments, outputs and stop behaviour are documented on :class:`BatchHandler`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
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
from callback_worker.handlers._context import argument_environment, preview, run_key, step_arguments
from callback_worker.handlers._settings import load_settings
from callback_worker.worker.handler import CallbackContext, Fail, OutputValue

if TYPE_CHECKING:
    from types_aiobotocore_batch import BatchClient
    from types_aiobotocore_batch.type_defs import JobDetailTypeDef, JobSummaryTypeDef

QUEUE_ARGUMENT = "batch_job_queue"
DEFINITION_ARGUMENT = "batch_job_definition"
FINISHED = frozenset({"SUCCEEDED", "FAILED"})
STOP_REASON = "The SageMaker pipeline execution is stopping."
#: How many jobs found to be their step's a handler remembers, so that a running job's owner is looked up once.
OWNED_MEMORY = 4096


class BatchSettings(PollingSettings):
    """Settings of the ``batch`` handler."""

    model_config = SettingsConfigDict(env_prefix="CALLBACK_WORKER_BATCH_")

    job_queue: Annotated[
        str | None, Field(default=None, min_length=1, max_length=2048, description="The job queue (name or ARN).")
    ]
    job_definition: Annotated[
        str | None,
        Field(default=None, min_length=1, max_length=2048, description="The job definition (name[:revision] or ARN)."),
    ]
    allow_overrides: Annotated[
        bool,
        Field(
            default=False,
            description=f"Let the step arguments '{QUEUE_ARGUMENT}' and '{DEFINITION_ARGUMENT}' choose queue and "
            "definition.",
        ),
    ]
    job_name_prefix: Annotated[
        str,
        Field(
            default="callback-",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
            description="Start of every job name; a hash of the token follows.",
        ),
    ]
    pass_arguments: Annotated[
        bool, Field(default=True, description="Pass step arguments to the container as CALLBACK_ARG_<NAME>.")
    ]


class BatchHandler(PollingJobHandler):
    """The ``batch`` handler: submits an AWS Batch job for the step and answers when the job ends.

    Settings (environment, prefix ``CALLBACK_WORKER_BATCH_``):

    - ``JOB_QUEUE`` (unset by default): Job queue (name or ARN) jobs are submitted to.
    - ``JOB_DEFINITION`` (unset by default): Job definition (``name``, ``name:revision`` or ARN).
    - ``ALLOW_OVERRIDES`` (default ``false``): Let the step arguments ``batch_job_queue`` / ``batch_job_definition``
      choose the queue and definition.
    - ``JOB_NAME_PREFIX`` (default ``callback-``): Start of every job name; the rest is a hash of the token.
    - ``PASS_ARGUMENTS`` (default ``true``): Pass each step argument to the container as ``CALLBACK_ARG_<NAME>`` (see
      the ``command`` handler for the naming rule).
    - ``POLL_INTERVAL`` (default ``30``): Seconds between polls (1 to 43,200).
    - ``MAX_WAIT`` (default ``0``): Seconds after which a job still going is terminated and the step failed (0 = no
      limit).

    Unset queue or definition: each step routed here fails naming the variable to set. Step arguments:
    ``batch_job_queue`` and ``batch_job_definition`` (when allowed); with ``PASS_ARGUMENTS`` all others reach the
    container's environment (container jobs only: ``containerOverrides`` does not apply to multi-node or EKS jobs),
    together with ``CALLBACK_PIPELINE_NAME``, ``CALLBACK_PIPELINE_EXECUTION_ARN`` and ``CALLBACK_EXECUTION_ID``.

    Outputs: ``job_id``, ``job_name``, ``job_status`` (``SUCCEEDED``) and ``exit_code`` when the container reports one.
    A ``FAILED`` job fails the step with Batch's status reason and the container's exit code and reason.

    **Idempotent start.** SubmitJob has no client token, so the job's name is deterministic — ``JOB_NAME_PREFIX`` + 32
    hex digits of SHA-256 over the token — and before submitting, ListJobs (``JOB_NAME`` filter, every status) looks for
    a job of that name in the queue; one found is adopted. Two replicas racing on two copies of one message could both
    submit in the instant between the two calls; Batch offers nothing to close that window.

    **Stopping.** ``on_stop`` finds the job by name and calls TerminateJob, which cancels a job not yet started and
    terminates a running one; a finished job is left alone.

    **Continuations.** A continuation's state names the job it polls (job id and queue); anyone who may send to the
    queue can write one, so before the job is described or terminated its queue must be this step's (``JOB_QUEUE``, or
    ``batch_job_queue`` when allowed) and ListJobs must list the job id under this step's job name in that queue. A
    state that names another job fails the step, and that job is never described or terminated. Each handler remembers
    the last 4,096 jobs it found to be their step's, so a running job costs one ListJobs per replica, not one per poll.

    Permissions: ``batch:SubmitJob``, ``batch:ListJobs``, ``batch:DescribeJobs``, ``batch:TerminateJob``. Tested against
    moto server with ``{"batch": {"use_docker": false}}`` (jobs succeed, or fail with ``MOTO_SIMPLE_BATCH_FAIL_AFTER``,
    at once) and against an HTTP-level stub of the Batch REST API for jobs that are still running and for TerminateJob —
    moto runs real jobs only in Docker, which is not available here.
    """

    label = "Batch job"

    def __init__(self) -> None:
        settings = load_settings(BatchSettings)
        super().__init__(settings)
        self.batch_settings = settings
        self._client: LazyClient[BatchClient] = LazyClient(
            lambda: get_session().create_client("batch", config=AioConfig(retries={"mode": "standard"}))
        )
        self._owned: dict[tuple[str, str, str], None] = {}
        """(job id, queue, job name) of jobs ListJobs showed to be their step's, oldest first."""

    async def aclose(self) -> None:
        await self._client.aclose()

    def job_name(self, token: str) -> str:
        """The job name for a callback token: the prefix and 32 hex digits of a hash of the token."""
        return self.batch_settings.job_name_prefix + run_key(token)

    def _chosen(self, context: CallbackContext, argument: str, field: str) -> str:
        chosen = context.arguments.get(argument)
        if chosen is not None and self.batch_settings.allow_overrides:
            if not isinstance(chosen, str) or not chosen:
                raise Fail(f"the step argument {argument!r} must be a non-empty string")
            return chosen
        return str(self.batch_settings.require(field))

    def _overrides(self) -> tuple[str, ...]:
        """The step arguments this handler consumes (and so does not pass on)."""
        return (QUEUE_ARGUMENT, DEFINITION_ARGUMENT) if self.batch_settings.allow_overrides else ()

    async def launch(self, context: CallbackContext) -> JobRef:
        queue = self._chosen(context, QUEUE_ARGUMENT, "job_queue")
        definition = self._chosen(context, DEFINITION_ARGUMENT, "job_definition")
        name = self.job_name(context.token)
        found = await self._find_job(queue, name)
        job_id = found["jobId"] if found is not None else await self._submit(queue, definition, name, context)
        return JobRef(job_id, queue, time.time())

    async def find(self, context: CallbackContext) -> JobRef | None:
        queue = self._chosen(context, QUEUE_ARGUMENT, "job_queue")
        found = await self._find_job(queue, self.job_name(context.token))
        if found is None or found.get("status") in FINISHED:
            return None
        return JobRef(found["jobId"], queue, time.time())

    async def verify(self, ref: JobRef, context: CallbackContext) -> None:
        """The state's queue must be this step's, and the job one ListJobs lists there under this step's name."""
        queue = self._chosen(context, QUEUE_ARGUMENT, "job_queue")
        check_target("Batch job queue", ref.scope, queue)
        owned = (ref.id, queue, self.job_name(context.token))
        if owned in self._owned:
            return
        if not any(job["jobId"] == ref.id for job in await self._jobs_named(queue, owned[2])):
            raise Fail(
                f"the continuation state names Batch job {preview(ref.id, 80)}, which is not this step's job "
                f"{owned[2]} in {queue}; it was neither polled nor stopped"
            )
        self._owned[owned] = None
        if len(self._owned) > OWNED_MEMORY:
            del self._owned[next(iter(self._owned))]

    async def poll(self, ref: JobRef, context: CallbackContext) -> JobStatus:
        client = await self._client.get()
        jobs = (await client.describe_jobs(jobs=[ref.id]))["jobs"]
        if not jobs:
            raise Fail(f"Batch job {ref.id} is unknown to Batch (jobs are forgotten some days after they end)")
        job = jobs[0]
        status = job["status"]
        if status == "SUCCEEDED":
            return JobStatus(status, outputs=_outputs(job))
        if status == "FAILED":
            return JobStatus(status, failure=_failure(job))
        return JobStatus(status)

    async def stop(self, ref: JobRef) -> None:
        client = await self._client.get()
        await client.terminate_job(jobId=ref.id, reason=STOP_REASON)

    async def _submit(self, queue: str, definition: str, name: str, context: CallbackContext) -> str:
        client = await self._client.get()
        request: dict[str, Any] = {"jobName": name, "jobQueue": queue, "jobDefinition": definition}
        if self.batch_settings.pass_arguments:
            environment = argument_environment(step_arguments(context, exclude=self._overrides()))
            environment |= {
                "CALLBACK_PIPELINE_NAME": context.pipeline_name,
                "CALLBACK_PIPELINE_EXECUTION_ARN": context.pipeline_execution_arn,
                "CALLBACK_EXECUTION_ID": context.execution_id,
            }
            request["containerOverrides"] = {
                "environment": [{"name": key, "value": value} for key, value in environment.items()]
            }
        return (await client.submit_job(**request))["jobId"]

    async def _find_job(self, queue: str, name: str) -> JobSummaryTypeDef | None:
        """The newest job named ``name`` in ``queue``, whatever its status."""
        newest: JobSummaryTypeDef | None = None
        for job in await self._jobs_named(queue, name):
            if _created(job) >= _created(newest):
                newest = job
        return newest

    async def _jobs_named(self, queue: str, name: str) -> list[JobSummaryTypeDef]:
        """Every job named ``name`` in ``queue``, whatever its status (ListJobs, all pages)."""
        client = await self._client.get()
        kwargs: dict[str, Any] = {}
        jobs: list[JobSummaryTypeDef] = []
        while True:
            page = await client.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}], **kwargs)
            jobs += [job for job in page.get("jobSummaryList", []) if job.get("jobName") == name]
            if not page.get("nextToken"):
                return jobs
            kwargs["nextToken"] = page["nextToken"]


def _created(job: JobSummaryTypeDef | None) -> int:
    return -1 if job is None else job.get("createdAt", 0)


def _outputs(job: JobDetailTypeDef) -> dict[str, OutputValue]:
    outputs: dict[str, OutputValue] = {"job_id": job["jobId"], "job_name": job["jobName"], "job_status": "SUCCEEDED"}
    exit_code = job.get("container", {}).get("exitCode")
    if exit_code is not None:
        outputs["exit_code"] = exit_code
    return outputs


def _failure(job: JobDetailTypeDef) -> str:
    container = job.get("container", {})
    parts = [f"Batch job {job['jobName']} ({job['jobId']}) FAILED: {job.get('statusReason') or 'no status reason'}"]
    if "exitCode" in container:
        parts.append(f"exit code {container['exitCode']}")
    if container.get("reason"):
        parts.append(str(container["reason"]))
    return "; ".join(parts)
