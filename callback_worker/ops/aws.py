"""AWS clients from the standard environment, and the fence that turns any error into one line and an exit code."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from callback_worker.ops.errors import ExitCode, OperatorError
from callback_worker.ops.tables import complain
from callback_worker.worker.logs import redact_token
from callback_worker.worker.preflight import config_problem
from callback_worker.worker.retrying import error_code
from callback_worker.worker.taxonomy import CONFIG_ERRORS

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sqs import SQSClient

Command = Callable[[argparse.Namespace], int]

#: Exit codes of the service's error codes; any other code exits with ExitCode.ERROR.
EXIT_CODES = {
    "ResourceNotFound": ExitCode.NOT_FOUND,
    "ConflictException": ExitCode.CONFLICT,
    "ValidationException": ExitCode.USAGE,
}
#: What an error code means for the operator, said before the service's own message.
EXPLANATIONS = {
    "ConflictException": "the step already has an outcome; nothing changed",
}


def sagemaker_client(config: Config | None = None) -> SageMakerClient:
    """A SageMaker client from the standard AWS environment (``AWS_ENDPOINT_URL_SAGEMAKER`` honoured), with
    ``config``."""
    return boto3.session.Session().client("sagemaker", region_name=_region(), config=config)


def sqs_client(config: Config | None = None) -> SQSClient:
    """An SQS client from the standard AWS environment (``AWS_ENDPOINT_URL_SQS`` honoured), with ``config``."""
    return boto3.session.Session().client("sqs", region_name=_region(), config=config)


def _region() -> str | None:
    # botocore reads AWS_DEFAULT_REGION and profiles but not AWS_REGION, which the worker honours (worker.app).
    return os.environ.get("AWS_REGION") or None


def guarded(command: Command) -> Command:
    """``command`` with every error reported as one stderr line (tokens masked) and an :class:`ExitCode`."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        token = getattr(args, "token", None)
        try:
            return command(args)
        except OperatorError as exc:
            return _fail(exc.exit_code, str(exc), token)
        except ClientError as exc:
            code = error_code(exc)
            return _fail(EXIT_CODES.get(code, ExitCode.ERROR), _client_error_text(code, exc), token)
        except BotoCoreError as exc:
            return _fail(*_botocore_problem(exc), token)
        except KeyboardInterrupt:
            return _fail(ExitCode.INTERRUPTED, "interrupted", token)

    return run


def _botocore_problem(exc: BotoCoreError) -> tuple[ExitCode, str]:
    if isinstance(exc, CONFIG_ERRORS):  # before any call: the profile or the config file
        return ExitCode.USAGE, config_problem(exc)
    if isinstance(exc, NoRegionError):
        return ExitCode.ERROR, "NoRegionError: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)"
    return ExitCode.ERROR, f"{type(exc).__name__}: {exc}"


def _client_error_text(code: str, exc: ClientError) -> str:
    message = str(exc.response.get("Error", {}).get("Message", "")).strip() or str(exc)
    explanation = EXPLANATIONS.get(code)
    return f"{code}: {explanation} ({message})" if explanation else f"{code}: {message}"


def _fail(code: ExitCode, message: str, token: object) -> int:
    if isinstance(token, str) and token:
        message = message.replace(token, redact_token(token))
    complain(message)
    return code
