"""The emulator's errors: one root (:class:`EmulatorError`); under it those it answers with, as SageMaker's JSON 1.1
protocol encodes them (:class:`ServiceError`), and two it keeps to itself while running an execution
(:class:`emulator.expressions.EvaluationError` fails a step, :class:`emulator.context.NeedDocument` asks for a
document to be fetched first).

Each class carries the wire error code (``__type``) and the HTTP status the real service uses for it, so
that botocore maps it onto the same exception class it would raise against AWS:
``client.exceptions.ResourceNotFound``, ``client.exceptions.ConflictException``,
``client.exceptions.ResourceLimitExceeded``, and ``ClientError`` with the code ``ValidationException``,
``ThrottlingException`` and so on for the unmodelled ones.
"""

from __future__ import annotations

from typing import ClassVar


class EmulatorError(Exception):
    """Root of every error the emulator raises on purpose."""


class ServiceError(EmulatorError):
    """An error answered to the client as ``{"__type": code, "Message": message}`` with HTTP ``status``."""

    code: ClassVar[str] = "InternalFailure"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """The request breaks a constraint of the API or of the pipeline definition."""

    code = "ValidationException"
    status = 400


class SerializationError(ServiceError):
    """The request body is not JSON, or a member has the wrong JSON type."""

    code = "SerializationException"
    status = 400


class UnknownOperationError(ServiceError):
    """The ``X-Amz-Target`` header is missing, garbled, or names an operation this endpoint does not serve."""

    code = "UnknownOperationException"
    status = 400


class ResourceNotFoundError(ServiceError):
    """The pipeline, execution or callback token does not exist (modelled as ``ResourceNotFound``)."""

    code = "ResourceNotFound"
    status = 400


class ConflictError(ServiceError):
    """The request conflicts with the resource's current state (modelled as ``ConflictException``)."""

    code = "ConflictException"
    status = 400


class ResourceLimitExceededError(ServiceError):
    """A resource limit was reached (modelled as ``ResourceLimitExceeded``)."""

    code = "ResourceLimitExceeded"
    status = 400


class ThrottlingError(ServiceError):
    """The request was throttled; botocore retries this code."""

    code = "ThrottlingException"
    status = 400


class InternalFailureError(ServiceError):
    """The service failed; HTTP 500, which botocore retries."""

    code = "InternalFailure"
    status = 500


class DefinitionError(ValidationError):
    """A pipeline definition (or a value for it) the service would refuse; a ValidationException."""
