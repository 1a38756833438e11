"""Building a :class:`~callback_worker.CallbackContext` for a handler test, with sensible defaults for every field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callback_worker.worker.handler import CallbackContext, JSONValue

DEFAULT_TOKEN = "TestToken0"  # noqa: S105 - a made-up callback token, no secret
DEFAULT_PIPELINE = "test-pipeline"
DEFAULT_EXECUTION_ID = "abcdef123456"
DEFAULT_HANDLER = "handler"
DEFAULT_MESSAGE_ID = "00000000-0000-4000-8000-000000000001"
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:pipeline"


def make_context(
    arguments: Mapping[str, JSONValue] | None = None,
    *,
    pipeline_name: str | None = None,
    execution_id: str | None = None,
    pipeline_execution_arn: str | None = None,
    **fields: Any,
) -> CallbackContext:
    """A context as the worker would pass it; any field may be given (``state=``, ``attempt=``, ``step_name=``...).

    The execution ARN, the pipeline name and the execution id agree: give the ARN and the other two are read from it,
    or give either of the two and the ARN is built from them.
    """
    if pipeline_execution_arn is not None:
        named_pipeline, _, named_id = pipeline_execution_arn.partition(":pipeline/")[2].partition("/execution/")
        pipeline_name = pipeline_name or named_pipeline
        execution_id = execution_id or named_id
    pipeline_name = pipeline_name or DEFAULT_PIPELINE
    execution_id = execution_id or DEFAULT_EXECUTION_ID
    arn = pipeline_execution_arn or f"{ARN_PREFIX}/{pipeline_name}/execution/{execution_id}"
    defaults: dict[str, Any] = {
        "token": DEFAULT_TOKEN,
        "handler_name": DEFAULT_HANDLER,
        "message_id": DEFAULT_MESSAGE_ID,
    }
    return CallbackContext(
        pipeline_execution_arn=arn,
        pipeline_name=pipeline_name,
        execution_id=execution_id,
        arguments=dict(arguments or {}),
        **(defaults | fields),
    )
