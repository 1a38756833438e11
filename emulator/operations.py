"""One handler per served operation: a validated request in, the response structure out.

Requests reach these handlers already checked against the service model (:mod:`emulator.validation`);
the handlers add what the model cannot say (a pipeline exists, a token is live, a definition is sound) and
raise the service's errors for it:

- unknown pipeline, execution or callback token: ``ResourceNotFound``;
- a step answered again: the same ``ClientRequestToken`` with the same request replays the first answer
  (HTTP 200, same response); anything else is ``ConflictException``;
- ``CreatePipeline`` of an existing name: ``ValidationException`` (unless it repeats the creating request);
- ``StartPipelineExecution`` repeated with the same ``ClientRequestToken``: the execution it started; with a
  ``SelectiveExecutionConfig`` it runs only the selected steps (:mod:`emulator.selective`).

Versions are served by :mod:`emulator.versions`, tags by :mod:`emulator.tags`. ``CreatePipeline`` and
``UpdatePipeline`` are coroutines (they may read the definition from S3); the others answer at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from callback_worker.emulator.arns import Partition
from callback_worker.emulator.engine import Engine, ExecutionRequest
from callback_worker.emulator.errors import ConflictError, ResourceNotFoundError, ValidationError
from callback_worker.emulator.pagination import paginate
from callback_worker.emulator.protocol import OPERATION_NAMES
from callback_worker.emulator.s3 import ObjectReader
from callback_worker.emulator.selective import plan_selection
from callback_worker.emulator.state import Answer, Execution, Pipeline, StepRun, Store
from callback_worker.emulator.tags import TagOperations, merge_tags
from callback_worker.emulator.values import to_text
from callback_worker.emulator.versions import VersionOperations, checked_definition, find_version, with_s3_definition
from callback_worker.emulator.views import (
    describe_execution,
    describe_pipeline,
    execution_step,
    execution_summary,
    pipeline_summary,
)

Params = Mapping[str, Any]
Result = dict[str, Any]
Handler = Callable[[Params], Result | Awaitable[Result]]


def _descending(params: Params) -> bool:
    # Lists are newest first unless the request asks for Ascending.
    order: str = params.get("SortOrder", "Descending")
    return order != "Ascending"


def _created_within(params: Params, created: float) -> bool:
    after = params.get("CreatedAfter")
    before = params.get("CreatedBefore")
    return bool((after is None or created > after) and (before is None or created < before))


class Operations:
    """The handlers, bound to one emulator's state."""

    def __init__(
        self, store: Store, engine: Engine, partition: Partition, *, reader: ObjectReader | None = None
    ) -> None:
        self.store = store
        self.engine = engine
        self.partition = partition
        self.reader = reader
        versions = VersionOperations(self._pipeline, self._execution, engine.clock, stubs=engine.stubs.enabled)
        tags = TagOperations(store, partition)
        self.handlers: dict[str, Handler] = {
            "CreatePipeline": self.create_pipeline_request,
            "UpdatePipeline": self.update_pipeline_request,
            "ListPipelineVersions": versions.list_pipeline_versions,
            "UpdatePipelineVersion": versions.update_pipeline_version,
            "DescribePipelineDefinitionForExecution": versions.describe_pipeline_definition_for_execution,
            "UpdatePipelineExecution": self.update_pipeline_execution,
            "RetryPipelineExecution": self.retry_pipeline_execution,
            "AddTags": tags.add_tags,
            "ListTags": tags.list_tags,
            "DeleteTags": tags.delete_tags,
            "DescribePipeline": self.describe_pipeline,
            "ListPipelines": self.list_pipelines,
            "DeletePipeline": self.delete_pipeline,
            "StartPipelineExecution": self.start_pipeline_execution,
            "StopPipelineExecution": self.stop_pipeline_execution,
            "DescribePipelineExecution": self.describe_pipeline_execution,
            "ListPipelineExecutions": self.list_pipeline_executions,
            "ListPipelineExecutionSteps": self.list_pipeline_execution_steps,
            "ListPipelineParametersForExecution": self.list_pipeline_parameters_for_execution,
            "SendPipelineExecutionStepSuccess": self.send_step_success,
            "SendPipelineExecutionStepFailure": self.send_step_failure,
        }
        self._versions = versions
        if set(self.handlers) != set(OPERATION_NAMES):
            raise RuntimeError("every served operation needs exactly one handler")

    # --- lookups ----------------------------------------------------------------------------------------

    def _pipeline(self, name_or_arn: str) -> Pipeline:
        name = self.partition.pipeline_name(name_or_arn)
        pipeline = self.store.pipeline(name) if name is not None else None
        if pipeline is None:
            shown = name_or_arn if name is None else self.partition.pipeline_arn(name)
            raise ResourceNotFoundError(f"Pipeline '{shown}' does not exist.")
        return pipeline

    def _execution(self, arn: str | None) -> Execution:
        if not arn:
            raise ValidationError("PipelineExecutionArn is required")
        execution = self.store.executions.get(arn)
        if execution is None:
            raise ResourceNotFoundError(f"Pipeline execution '{arn}' does not exist.")
        return execution

    def _step(self, token: str) -> tuple[Execution, StepRun]:
        found = self.store.tokens.get(token)
        if found is None:
            raise ResourceNotFoundError(f"No pipeline execution step has the callback token '{token}'.")
        return found

    # --- pipelines --------------------------------------------------------------------------------------

    async def create_pipeline_request(self, params: Params) -> Result:
        """``CreatePipeline``, the definition inline or at ``PipelineDefinitionS3Location``."""
        if self.store.pipeline(params["PipelineName"]) is None:
            params = await with_s3_definition(params, self.reader)
        return self.create_pipeline(params)

    async def update_pipeline_request(self, params: Params) -> Result:
        """``UpdatePipeline``, the definition inline or at ``PipelineDefinitionS3Location``."""
        self._pipeline(params["PipelineName"])
        return self._versions.update_pipeline(await with_s3_definition(params, self.reader))

    def create_pipeline(self, params: Params) -> Result:
        """``CreatePipeline`` from an inline ``PipelineDefinition`` (version 1)."""
        name: str = params["PipelineName"]
        existing = self.store.pipeline(name)
        if existing is not None:
            if existing.client_request_token == params["ClientRequestToken"]:
                return {"PipelineArn": existing.arn}
            raise ValidationError(
                "Pipeline names must be unique within an AWS account and region. "
                f"Pipeline with name ({name}) already exists."
            )
        definition, spec = checked_definition(params, stubs=self.engine.stubs.enabled)
        now = self.engine.clock()
        pipeline = Pipeline(
            name=name,
            arn=self.partition.pipeline_arn(name),
            display_name=params.get("PipelineDisplayName") or name,
            description=params.get("PipelineDescription"),
            role_arn=params["RoleArn"],
            definition=definition,
            spec=spec,
            parallelism=(params.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps"),
            creation_time=now,
            client_request_token=params["ClientRequestToken"],
            seq=self.store.next_seq(),
            last_modified_time=now,
        )
        pipeline.add_version(definition, spec, now)
        merge_tags(pipeline, params.get("Tags", []))
        self.store.pipelines[name.lower()] = pipeline
        self.store.deleted_pipelines.pop(name.lower(), None)
        return {"PipelineArn": pipeline.arn}

    def describe_pipeline(self, params: Params) -> Result:
        """``DescribePipeline``, of the newest version or of ``PipelineVersionId``."""
        pipeline = self._pipeline(params["PipelineName"])
        version = find_version(pipeline, params.get("PipelineVersionId"))
        return describe_pipeline(pipeline, version, self.partition.account)

    def list_pipelines(self, params: Params) -> Result:
        """``ListPipelines``: filtered by name prefix and creation time, sorted by creation time or name."""
        prefix = str(params.get("PipelineNamePrefix", "")).lower()
        pipelines = [
            pipeline
            for pipeline in self.store.pipelines.values()
            if pipeline.name.lower().startswith(prefix) and _created_within(params, pipeline.creation_time)
        ]
        by_name = params.get("SortBy") == "Name"
        page, token = paginate(
            pipelines,
            (lambda p: (p.name.lower(), p.seq)) if by_name else (lambda p: (p.creation_time, p.seq)),
            scope=f"ListPipelines/{'Name' if by_name else 'CreationTime'}",
            descending=_descending(params),
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return _with_token({"PipelineSummaries": [pipeline_summary(p) for p in page]}, token)

    def delete_pipeline(self, params: Params) -> Result:
        """``DeletePipeline``; its executions stay describable and their tokens answerable."""
        name: str = params["PipelineName"]
        deleted = self.store.deleted_pipelines.get(name.lower())
        replayed = deleted is not None and deleted[0] == params["ClientRequestToken"]
        if deleted is not None and replayed and self.store.pipeline(name) is None:
            return {"PipelineArn": deleted[1]}
        pipeline = self._pipeline(name)
        del self.store.pipelines[name.lower()]
        self.store.deleted_pipelines[name.lower()] = (params["ClientRequestToken"], pipeline.arn)
        return {"PipelineArn": pipeline.arn}

    # --- executions -------------------------------------------------------------------------------------

    def start_pipeline_execution(self, params: Params) -> Result:
        """``StartPipelineExecution``; a repeated ``ClientRequestToken`` returns the execution it started."""
        pipeline = self._pipeline(params["PipelineName"])
        token: str = params["ClientRequestToken"]
        earlier = self.store.started.get((pipeline.arn, token))
        if earlier is not None:
            return {"PipelineExecutionArn": earlier.arn}
        version = find_version(pipeline, params.get("PipelineVersionId"))
        parameters = version.spec.resolve_parameters(params.get("PipelineParameters", []))
        selection = None
        if "SelectiveExecutionConfig" in params:
            config = params["SelectiveExecutionConfig"]
            source_arn = config.get("SourcePipelineExecutionArn")
            source = self._execution(source_arn) if source_arn else None
            selection = plan_selection(version.spec, config, source, pipeline)
        request = ExecutionRequest(
            version=version,
            pipeline=pipeline,
            parameters=parameters,
            display_name=params.get("PipelineExecutionDisplayName"),
            description=params.get("PipelineExecutionDescription"),
            parallelism=(params.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps"),
            client_request_token=token,
            mlflow_experiment_name=params.get("MlflowExperimentName"),
            selection=selection,
        )
        return {"PipelineExecutionArn": self.engine.start(request).arn}

    def stop_pipeline_execution(self, params: Params) -> Result:
        """``StopPipelineExecution``."""
        execution = self._execution(params["PipelineExecutionArn"])
        self.engine.stop(execution, params["ClientRequestToken"])
        return {"PipelineExecutionArn": execution.arn}

    def describe_pipeline_execution(self, params: Params) -> Result:
        """``DescribePipelineExecution``."""
        return describe_execution(self._execution(params["PipelineExecutionArn"]), self.partition.account)

    def update_pipeline_execution(self, params: Params) -> Result:
        """``UpdatePipelineExecution``: display name, description, parallelism."""
        execution = self._execution(params["PipelineExecutionArn"])
        execution.display_name = params.get("PipelineExecutionDisplayName") or execution.display_name
        execution.description = params.get("PipelineExecutionDescription", execution.description)
        parallelism = params.get("ParallelismConfiguration")
        if parallelism is not None:
            execution.parallelism = parallelism.get("MaxParallelExecutionSteps")
        execution.last_modified_time = self.engine.clock()
        return {"PipelineExecutionArn": execution.arn}

    def retry_pipeline_execution(self, params: Params) -> Result:
        """``RetryPipelineExecution`` of a Failed execution."""
        execution = self._execution(params["PipelineExecutionArn"])
        parallelism = (params.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")
        self.engine.retry(execution, params["ClientRequestToken"], parallelism)
        return {"PipelineExecutionArn": execution.arn}

    def list_pipeline_executions(self, params: Params) -> Result:
        """``ListPipelineExecutions`` of one pipeline, sorted by creation time (default) or ARN."""
        pipeline = self._pipeline(params["PipelineName"])
        executions = [
            execution
            for execution in self.store.executions_of(pipeline)
            if _created_within(params, execution.creation_time)
        ]
        by_arn = params.get("SortBy") == "PipelineExecutionArn"
        page, token = paginate(
            executions,
            (lambda e: (e.arn, e.seq)) if by_arn else (lambda e: (e.creation_time, e.seq)),
            scope=f"ListPipelineExecutions/{pipeline.arn}/{'Arn' if by_arn else 'CreationTime'}",
            descending=_descending(params),
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return _with_token({"PipelineExecutionSummaries": [execution_summary(e) for e in page]}, token)

    def list_pipeline_execution_steps(self, params: Params) -> Result:
        """``ListPipelineExecutionSteps``: the steps that started, by start time (newest first by default)."""
        execution = self._execution(params.get("PipelineExecutionArn"))
        page, token = paginate(
            list(execution.steps.values()),
            lambda run: (run.start_time, run.seq),
            scope=f"ListPipelineExecutionSteps/{execution.arn}",
            descending=_descending(params),
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return _with_token({"PipelineExecutionSteps": [execution_step(run) for run in page]}, token)

    def list_pipeline_parameters_for_execution(self, params: Params) -> Result:
        """``ListPipelineParametersForExecution``: every parameter's value (as text), in definition order."""
        execution = self._execution(params["PipelineExecutionArn"])
        items = [{"Name": name, "Value": to_text(value)} for name, value in execution.parameters.items()]
        order = {item["Name"]: index for index, item in enumerate(items)}
        page, token = paginate(
            items,
            lambda item: (order[item["Name"]],),
            scope=f"ListPipelineParametersForExecution/{execution.arn}",
            descending=False,
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return _with_token({"PipelineParameters": page}, token)

    # --- callbacks --------------------------------------------------------------------------------------

    def send_step_success(self, params: Params) -> Result:
        """``SendPipelineExecutionStepSuccess``."""
        execution, run = self._step(params["CallbackToken"])
        outputs: list[dict[str, str]] = [
            {"Name": item["Name"], "Value": item["Value"]} for item in params.get("OutputParameters", [])
        ]
        _check_unique_names(outputs)
        answer = Answer("Success", params.get("ClientRequestToken"), {"OutputParameters": outputs})
        if not run.running:
            return _replay(execution, run, answer)
        self.engine.succeed(execution, run, outputs, answer)
        return {"PipelineExecutionArn": execution.arn}

    def send_step_failure(self, params: Params) -> Result:
        """``SendPipelineExecutionStepFailure``."""
        execution, run = self._step(params["CallbackToken"])
        reason: str | None = params.get("FailureReason")
        answer = Answer("Failure", params.get("ClientRequestToken"), {"FailureReason": reason})
        if not run.running:
            return _replay(execution, run, answer)
        self.engine.fail(execution, run, reason, answer)
        return {"PipelineExecutionArn": execution.arn}


def _with_token(result: Result, token: str | None) -> Result:
    if token is not None:
        result["NextToken"] = token
    return result


def _check_unique_names(outputs: Sequence[Mapping[str, str]]) -> None:
    seen: set[str] = set()
    for item in outputs:
        if item["Name"] in seen:
            raise ValidationError(f"OutputParameters names {item['Name']!r} more than once")
        seen.add(item["Name"])


def _replay(execution: Execution, run: StepRun, answer: Answer) -> Result:
    """The first answer's response if ``answer`` repeats it exactly; otherwise ``ConflictException``."""
    first = run.answer
    if first is not None and answer.client_request_token is not None and first == answer:
        return {"PipelineExecutionArn": execution.arn}
    raise ConflictError(
        f"Step '{run.spec.name}' of pipeline execution '{execution.arn}' is already {run.status.value}; "
        "its callback token cannot be answered again."
    )
