"""SageMaker's wire protocol (AWS JSON 1.1): which operation a request names, its body, and the answers.

A request is ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON object body
(``Content-Type: application/x-amz-json-1.1``); its SigV4 signature is accepted without checking. An answer
is a JSON object; an error is ``{"__type": "<Code>", "Message": "..."}`` with the code's HTTP status.
Timestamps travel as epoch seconds (numbers), which botocore turns into ``datetime`` objects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from callback_worker.emulator.errors import SerializationError, ServiceError, UnknownOperationError
from callback_worker.emulator.values import load_json

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_HEADER = "X-Amz-Target"
TARGET_PREFIX = "SageMaker."
REQUEST_ID_HEADER = "x-amzn-RequestId"
#: Every response carries it: a client can tell this emulator from SageMaker (``send-test-message`` then starts a
#: real one-step pipeline execution instead of sending a bare message).
EMULATOR_HEADER = "x-callback-worker-emulator"

#: The operations this endpoint serves; every other target is an ``UnknownOperationException``.
OPERATION_NAMES = (
    "CreatePipeline",
    "DescribePipeline",
    "ListPipelines",
    "DeletePipeline",
    "StartPipelineExecution",
    "StopPipelineExecution",
    "DescribePipelineExecution",
    "ListPipelineExecutions",
    "ListPipelineExecutionSteps",
    "ListPipelineParametersForExecution",
    "SendPipelineExecutionStepSuccess",
    "SendPipelineExecutionStepFailure",
    "UpdatePipeline",
    "ListPipelineVersions",
    "UpdatePipelineVersion",
    "DescribePipelineDefinitionForExecution",
    "UpdatePipelineExecution",
    "RetryPipelineExecution",
    "AddTags",
    "ListTags",
    "DeleteTags",
)


def operation_from_target(target: str | None) -> str:
    """The operation named by an ``X-Amz-Target`` header; :class:`UnknownOperationError` if none is served."""
    if not target:
        raise UnknownOperationError(f"The request has no {TARGET_HEADER} header naming an operation")
    prefix, _, operation = target.partition(".")
    if f"{prefix}." != TARGET_PREFIX or not operation:
        raise UnknownOperationError(
            f"{TARGET_HEADER} {target!r} does not name a SageMaker operation (expected SageMaker.<Operation>)"
        )
    if operation not in OPERATION_NAMES:
        raise UnknownOperationError(
            f"Operation {operation!r} is not supported by this endpoint; it serves {', '.join(OPERATION_NAMES)}"
        )
    return operation


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (an empty body is an empty object)."""
    if not raw.strip():
        return {}
    try:
        document = load_json(raw)
    except ValueError as error:
        raise SerializationError(f"The request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise SerializationError("The request body must be a JSON object")
    return document


def encode_result(result: Mapping[str, Any]) -> bytes:
    """The body of a successful answer."""
    return json.dumps(result, separators=(",", ":")).encode()


def encode_error(error: ServiceError) -> bytes:
    """The body of an error answer, in the form botocore's JSON parser reads."""
    return json.dumps({"__type": error.code, "Message": error.message}).encode()


def new_request_id() -> str:
    """A request id for the ``x-amzn-RequestId`` header (botocore reports it as ``ResponseMetadata.RequestId``)."""
    return str(uuid.uuid4())
