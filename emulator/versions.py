"""Pipeline versions: ``UpdatePipeline``, ``ListPipelineVersions``, ``UpdatePipelineVersion``,
``DescribePipelineDefinitionForExecution``, and definitions read from ``PipelineDefinitionS3Location``.

``CreatePipeline`` makes version 1; each ``UpdatePipeline`` adds the next version, which new executions run;
an execution keeps the version it started with (``DescribePipelineDefinitionForExecution`` returns that
version's definition). ``DescribePipeline`` and ``StartPipelineExecution`` take a ``PipelineVersionId``; an
unknown one is ``ResourceNotFound``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from callback_worker.emulator.definition import PipelineSpec, parse_definition
from callback_worker.emulator.errors import ResourceNotFoundError, ValidationError
from callback_worker.emulator.pagination import paginate
from callback_worker.emulator.s3 import ObjectReader
from callback_worker.emulator.state import Execution, Pipeline, PipelineVersion
from callback_worker.emulator.views import version_summary

Params = Mapping[str, Any]


def find_version(pipeline: Pipeline, version_id: int | None) -> PipelineVersion:
    """Version ``version_id`` of ``pipeline`` (the newest for ``None``); ``ResourceNotFound`` if it has none."""
    if version_id is None:
        return pipeline.version
    version = pipeline.versions.get(version_id)
    if version is None:
        raise ResourceNotFoundError(f"Pipeline version {version_id} of pipeline '{pipeline.arn}' does not exist.")
    return version


def checked_definition(params: Params, *, stubs: bool) -> tuple[str, PipelineSpec]:
    """The request's ``PipelineDefinition`` text and its parsed form."""
    definition = params.get("PipelineDefinition")
    if not definition:
        raise ValidationError("Either PipelineDefinition or PipelineDefinitionS3Location is required")
    return definition, parse_definition(definition, stubs=stubs)


async def with_s3_definition(params: Params, reader: ObjectReader | None) -> Params:
    """``params`` with the definition at ``PipelineDefinitionS3Location`` read into ``PipelineDefinition``."""
    location = params.get("PipelineDefinitionS3Location")
    if location is None:
        return params
    if params.get("PipelineDefinition"):
        raise ValidationError("Give either PipelineDefinition or PipelineDefinitionS3Location, not both")
    if reader is None:
        raise ValidationError("PipelineDefinitionS3Location cannot be read: this emulator has no S3 access")
    try:
        raw = await reader.read(location["Bucket"], location["ObjectKey"], location.get("VersionId"))
        text = raw.decode("utf-8")
    except LookupError as error:
        raise ValidationError(f"PipelineDefinitionS3Location: {error}") from None
    except UnicodeDecodeError:
        raise ValidationError("PipelineDefinitionS3Location: the object is not UTF-8 text") from None
    return {**params, "PipelineDefinition": text}


class VersionOperations:
    """The version handlers; ``pipeline``/``execution`` look resources up as the other handlers do."""

    def __init__(
        self,
        pipeline: Callable[[str], Pipeline],
        execution: Callable[[str], Execution],
        clock: Callable[[], float],
        *,
        stubs: bool,
    ) -> None:
        self._find_pipeline = pipeline
        self._find_execution = execution
        self._clock = clock
        self._stubs = stubs

    def update_pipeline(self, params: Params) -> dict[str, Any]:
        """``UpdatePipeline``: a new version when a definition is given; other members update the pipeline."""
        pipeline = self._find_pipeline(params["PipelineName"])
        now = self._clock()
        if params.get("PipelineDefinition"):
            definition, spec = checked_definition(params, stubs=self._stubs)
            pipeline.add_version(definition, spec, now)
        pipeline.display_name = params.get("PipelineDisplayName") or pipeline.display_name
        pipeline.description = params.get("PipelineDescription", pipeline.description)
        pipeline.role_arn = params.get("RoleArn") or pipeline.role_arn
        parallelism = params.get("ParallelismConfiguration")
        if parallelism is not None:
            pipeline.parallelism = parallelism.get("MaxParallelExecutionSteps")
        pipeline.last_modified_time = now
        return {"PipelineArn": pipeline.arn, "PipelineVersionId": pipeline.version.id}

    def list_pipeline_versions(self, params: Params) -> dict[str, Any]:
        """``ListPipelineVersions``, newest first unless ``SortOrder`` is ``Ascending``."""
        pipeline = self._find_pipeline(params["PipelineName"])
        after, before = params.get("CreatedAfter"), params.get("CreatedBefore")
        versions = [
            version
            for version in pipeline.versions.values()
            if (after is None or version.creation_time > after) and (before is None or version.creation_time < before)
        ]
        page, token = paginate(
            versions,
            lambda version: (version.id,),
            scope=f"ListPipelineVersions/{pipeline.arn}",
            descending=params.get("SortOrder", "Descending") != "Ascending",
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        summaries = [version_summary(pipeline, version) for version in page]
        return {"PipelineVersionSummaries": summaries, **({"NextToken": token} if token else {})}

    def update_pipeline_version(self, params: Params) -> dict[str, Any]:
        """``UpdatePipelineVersion``: its display name and description."""
        pipeline = self._find_pipeline(params["PipelineArn"])
        version = find_version(pipeline, params["PipelineVersionId"])
        version.display_name = params.get("PipelineVersionDisplayName", version.display_name)
        version.description = params.get("PipelineVersionDescription", version.description)
        return {"PipelineArn": pipeline.arn, "PipelineVersionId": version.id}

    def describe_pipeline_definition_for_execution(self, params: Params) -> dict[str, Any]:
        """``DescribePipelineDefinitionForExecution``: the definition the execution runs."""
        execution = self._find_execution(params["PipelineExecutionArn"])
        return {"PipelineDefinition": execution.version.definition, "CreationTime": execution.creation_time}
