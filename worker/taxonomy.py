"""The one table of AWS errors on the delivery path: what each error means for the message and the decided answer.

Every call the daemon makes for a delivery — receive, lease renewal, delete, re-queue send, each page of the step
listing, describe, ``Send*Success``/``Failure`` — classifies its errors here, and nowhere else. The classes:

* :attr:`ErrorClass.THROTTLED` — the service asks us to slow down: retry through the rate limiter, keep everything.
* :attr:`ErrorClass.UNAVAILABLE` — no answer, or a 5xx: the service is down or the network is. Retry with backoff,
  keep everything, for as long as it takes (the lease is renewed meanwhile).
* :attr:`ErrorClass.UNCERTAIN` — an answer we do not positively know to be final: any 4xx not in the table below,
  access denied (an IAM change still propagating), expired or invalid credentials, a failed credential refresh,
  signing and clock-skew errors, and any exception we did not foresee. Retry with backoff and keep everything,
  loudly (logs, ``callback_worker_report_errors_total``); never change or drop an answer because of one.
* :attr:`ErrorClass.DEFINITIVE` — the service says something final about *this* step or receipt: the step already has
  an answer, SageMaker does not know the token or the execution, SQS no longer honours this receipt. Listed per
  operation in :data:`DEFINITIVE`.
* :attr:`ErrorClass.INVALID_CONTENT` — the service refused the request's own content (the outputs, the failure
  reason, a body SQS will not store). Listed per operation in :data:`INVALID_CONTENT`. Only this class may turn a
  Success into a Failure, and the Failure then says so.

The table is conservative on purpose. A general-purpose client (botocore's retry modes) gives up on an unknown error;
a daemon that holds someone's decided answer must not: what is not positively known to be final is transient.
``tests/faultmatrix`` generates every error botocore's service models list for these operations and checks the
daemon against this promise.

Start-up (:mod:`worker.preflight`) reads the same errors through :func:`startup_fault`, with the codes below: before
the first receive the daemon holds nothing, so only what is positively a mistake (no credentials at all, no such
queue) stops it at once; the rest is retried within a bounded window, as the preflight's docstring says. While
running, the poller logs :data:`MISCONFIGURATION_CODES` as a likely mistake, and retries them like any other.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    InvalidConfigError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError


class ErrorClass(StrEnum):
    """What an error means for the delivery (see the module docstring)."""

    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    UNCERTAIN = "uncertain"
    DEFINITIVE = "definitive"
    INVALID_CONTENT = "invalid_content"

    @property
    def transient(self) -> bool:
        """Retry and keep everything (the message, the decided answer)."""
        return self in (ErrorClass.THROTTLED, ErrorClass.UNAVAILABLE, ErrorClass.UNCERTAIN)


#: Error codes by which AWS services say "asked too often" (botocore's retry modes' list, SQS's and KMS's own).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "AWS.SimpleQueueService.ThrottledException",
        "KMS.ThrottlingException",
        "KmsThrottled",
    }
)

#: Error codes by which a service says it failed on its own (whatever the HTTP status it came with).
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

_SEND_ANSWER_DEFINITIVE = {
    "ConflictException": "the step already has an answer (another replica, an operator, or an earlier delivery)",
    "ResourceNotFound": "SageMaker does not know the callback token",
}

#: Per operation, the errors that say something final about this step or this receipt, and what.
DEFINITIVE: dict[str, dict[str, str]] = {
    "SendPipelineExecutionStepSuccess": _SEND_ANSWER_DEFINITIVE,
    "SendPipelineExecutionStepFailure": _SEND_ANSWER_DEFINITIVE,
    # Only on the first page (the caller's job): a later page's error says nothing of the execution.
    "ListPipelineExecutionSteps": {"ResourceNotFound": "SageMaker does not know the pipeline execution"},
    "DescribePipelineExecution": {"ResourceNotFound": "SageMaker does not know the pipeline execution"},
    "ChangeMessageVisibilityBatch": {
        "ReceiptHandleIsInvalid": "the receipt is no longer the message's current one",
        "MessageNotInflight": "the message is visible again: its lease lapsed",
        "AWS.SimpleQueueService.MessageNotInflight": "the message is visible again: its lease lapsed",
        "InvalidParameterValue": "SQS keeps a message hidden at most 12 hours per receipt",
    },
    "DeleteMessageBatch": {"ReceiptHandleIsInvalid": "the receipt handle is not one SQS issued"},
}

#: Per operation, the errors by which the service refuses the request's own content, and what it refused.
INVALID_CONTENT: dict[str, dict[str, str]] = {
    "SendPipelineExecutionStepSuccess": {"ValidationException": "SageMaker rejected the step's outputs"},
    "SendPipelineExecutionStepFailure": {"ValidationException": "SageMaker rejected the failure reason"},
    "SendMessage": {
        "InvalidMessageContents": "the body holds characters SQS does not store",
        "InvalidParameterValue": "SQS refused the message (too long, or a bad parameter)",
        "MessageTooLong": "the body is over the queue's MaximumMessageSize",
    },
}

#: Client-side failures that mean the request did not get an answer: the network or the endpoint is down.
_NO_ANSWER: tuple[type[BaseException], ...] = (
    HTTPClientError,
    InvalidConfigError,
    BotocoreConnectionError,
    EndpointConnectionError,
    ConnectionClosedError,
    aiohttp.ClientConnectionError,
    aiohttp.ServerTimeoutError,
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError (or of a batch entry's failure), else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or type(exc).__name__
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def http_status(exc: BaseException) -> int:
    """The HTTP status of a ClientError's response (0 when there is none)."""
    if not isinstance(exc, ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def classify(operation: str, exc: BaseException) -> ErrorClass:
    """The class of ``exc`` raised by ``operation`` (botocore's operation name, e.g. ``SendMessage``)."""
    code = error_code(exc)
    if code in DEFINITIVE.get(operation, {}):
        return ErrorClass.DEFINITIVE
    if code in INVALID_CONTENT.get(operation, {}) or isinstance(exc, ParamValidationError):
        return ErrorClass.INVALID_CONTENT
    return _transient_class(code, exc)


def _transient_class(code: str, exc: BaseException) -> ErrorClass:
    status = http_status(exc)
    if code in THROTTLING_CODES or status == 429:
        return ErrorClass.THROTTLED
    if code in UNAVAILABLE_CODES or status >= 500 or isinstance(exc, _NO_ANSWER):
        return ErrorClass.UNAVAILABLE
    return ErrorClass.UNCERTAIN


def explain(operation: str, exc: BaseException) -> str:
    """Why the table classes ``exc`` as it does, for logs and failure reasons."""
    code = error_code(exc)
    reason = DEFINITIVE.get(operation, {}).get(code) or INVALID_CONTENT.get(operation, {}).get(code)
    return f"{code}: {reason}" if reason else f"{code}: {exc}"


def is_throttling(exc: BaseException) -> bool:
    """True for a throttling answer (by error code, or HTTP 429)."""
    return isinstance(exc, ClientError) and _transient_class(error_code(exc), exc) is ErrorClass.THROTTLED


def is_outage(exc: BaseException) -> bool:
    """True for throttling, a 5xx or no answer at all: errors worth retrying unchanged by any client."""
    return _transient_class(error_code(exc), exc) in (ErrorClass.THROTTLED, ErrorClass.UNAVAILABLE)


# -- start-up ---------------------------------------------------------------------------------------------------------

#: Errors by which SQS says the queue URL names no queue it has (in this region, at this endpoint).
NO_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue", "InvalidAddress"}
)
#: Errors by which a service says the credentials' identity may not make the call (or an IAM change has not
#: propagated yet).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
#: Errors by which a service refuses the credentials themselves (unknown key, wrong secret, expired session, or a
#: key too new to have propagated).
CREDENTIALS_REFUSED_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
    }
)
#: Receive errors that most likely mean a wrong queue URL or missing permissions (still retried while running).
MISCONFIGURATION_CODES = NO_QUEUE_CODES | DENIED_CODES | CREDENTIALS_REFUSED_CODES
#: Client-side failures to find or read any credentials: no call was made.
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound)
#: botocore's failures to read its own configuration (the profile, the config file), raised before any call.
CONFIG_ERRORS = (ProfileNotFound, ConfigParseError, ConfigNotFound, InvalidConfigError)


class StartupFault(StrEnum):
    """What an error of a start-up call says; only :attr:`final` ones are certain to be a mistake."""

    NO_CREDENTIALS = "no_credentials"
    NO_QUEUE = "no_queue"
    CREDENTIALS_REFUSED = "credentials_refused"
    DENIED = "denied"
    NO_ANSWER = "no_answer"
    NOT_AWS = "not_aws"
    OUTAGE = "outage"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        """Certain to be a mistake of configuration: waiting cannot fix it."""
        return self in (StartupFault.NO_CREDENTIALS, StartupFault.NO_QUEUE)


_STARTUP_BY_CODE = {
    **dict.fromkeys(NO_QUEUE_CODES, StartupFault.NO_QUEUE),
    **dict.fromkeys(CREDENTIALS_REFUSED_CODES, StartupFault.CREDENTIALS_REFUSED),
    **dict.fromkeys(DENIED_CODES, StartupFault.DENIED),
}


def not_an_aws_answer(exc: BaseException) -> bool:
    """Whether an error is an HTTP answer with no AWS error in it: botocore names the error by the bare status (a web
    server's 404 page) and no request id came back — the endpoint is not the service's. Never a 5xx or a 429: AWS's
    own load balancers and gateways answer those without an AWS error during an outage."""
    if not isinstance(exc, ClientError):
        return False
    headers = {name.lower() for name in exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})}
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500 or status == 429:  # a gateway's or load balancer's page during an outage carries no AWS error
        return False
    return error_code(exc).isdigit() and not headers & {"x-amzn-requestid", "x-amz-request-id"}


def startup_fault(exc: BaseException) -> StartupFault:
    """The class of an error a start-up call (a queue's attributes, a SageMaker probe) raised."""
    if isinstance(exc, (*CREDENTIAL_ERRORS, *CONFIG_ERRORS)):  # botocore's own settings: no call was made
        return StartupFault.NO_CREDENTIALS
    if not_an_aws_answer(exc):
        return StartupFault.NOT_AWS
    by_code = _STARTUP_BY_CODE.get(error_code(exc))
    if by_code is not None:
        return by_code
    if not is_outage(exc):
        return StartupFault.UNKNOWN
    return StartupFault.OUTAGE if isinstance(exc, ClientError) else StartupFault.NO_ANSWER
