"""What botocore's own data says about errors, read offline from the installed botocore.

- :func:`modelled_errors`: the error shapes a service model lists for an operation, with the wire codes, HTTP status
  and fault side the shape's ``error`` trait records (when it records them).
- :func:`retry_codes` and :func:`retry_statuses`: the codes and bare statuses botocore's retry rules treat as
  throttling or transient (standard mode's fixed lists in ``botocore/retries/standard.py`` and the legacy rules of
  ``botocore/data/_retry.json``).
- :func:`endpoint_url`: the regional endpoint a client resolves for a service, as a request's URL carries it.

Nothing here opens a connection; the session and models are cached for the process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.model import ServiceModel, Shape
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker
from botocore.session import Session

#: Region of every client built here; no request ever leaves the process, so it only shapes URLs.
REGION = "us-east-1"
#: When a model (or botocore's retry rules) names no status for an error: AWS's JSON and query protocols answer
#: client errors with 400.
DEFAULT_STATUS = 400


@cache
def session() -> Session:
    """One botocore session for the process (its loader caches the models)."""
    return botocore.session.get_session()


@cache
def service_model(service: str) -> ServiceModel:
    return session().get_service_model(service)


def is_query_compatible(service: str) -> bool:
    """True when the service moved from the query protocol to JSON and still sends its old codes in the
    ``x-amzn-query-error`` header (SQS). The trait is present but empty (``{}``) in SQS's model, so presence counts."""
    return "awsQueryCompatible" in service_model(service).metadata


@dataclass(frozen=True)
class ModelledError:
    """One error shape of an operation: ``codes`` are the shape's name and, when its ``error`` trait records a
    different wire code (a query-compatible service's legacy code), that code too; either can reach a caller."""

    shape: str
    codes: tuple[str, ...]
    status: int | None
    sender_fault: bool | None


def shape_error(shape: Shape) -> ModelledError:
    """The wire codes, status and fault side an error shape records (``None`` where it records nothing)."""
    trait: Mapping[str, Any] = shape.metadata.get("error", {})
    legacy = trait.get("code")
    codes = (shape.name,) if not legacy or legacy == shape.name else (shape.name, str(legacy))
    status = trait.get("httpStatusCode")
    sender = trait.get("senderFault")
    return ModelledError(
        shape=shape.name,
        codes=codes,
        status=int(status) if status is not None else None,
        sender_fault=bool(sender) if sender is not None else None,
    )


def modelled_errors(service: str, operation: str) -> list[ModelledError]:
    """The error shapes ``service``'s model lists for ``operation``, in the model's order."""
    return [shape_error(shape) for shape in service_model(service).operation_model(operation).error_shapes]


@cache
def _retry_data() -> Mapping[str, Any]:
    data: Mapping[str, Any] = session().get_data("_retry")
    return data


def _conditions(name: str) -> Iterator[Mapping[str, Any]]:
    """The ``response`` conditions of the ``_retry.json`` rules named ``name`` (``"__default__"``: the rules for
    every service; a service name: that service's rules, per operation or ``__default__``), ``$ref``s resolved."""
    data = _retry_data()
    retry = data["retry"]
    # The top-level defaults are one block of rules; a service's entry maps its operations to blocks.
    blocks = [retry["__default__"]] if name == "__default__" else list(retry.get(name, {}).values())
    for block in blocks:
        for policy in block.get("policies", {}).values():
            resolved = data["definitions"][policy["$ref"]] if "$ref" in policy else policy
            response = resolved["applies_when"].get("response")
            if response is not None:
                yield response


def status_for(service: str, code: str) -> int | None:
    """The status botocore's retry rules pair with ``code``: ``service``'s own rules first, then the defaults, then
    any other service's (standard mode retries some codes everywhere that ``_retry.json`` pairs only under one
    service). ``None`` when no rule names the code."""
    others = sorted(name for name in _retry_data()["retry"] if name not in (service, "__default__"))
    for name in (service, "__default__", *others):
        for response in _conditions(name):
            if response.get("service_error_code") == code and "http_status_code" in response:
                return int(response["http_status_code"])
    return None


def _standard_mode_list(checker: type, attribute: str) -> list[Any]:
    # botocore keeps these lists private (class attributes of its checkers). Reading them through vars() fails
    # loudly (KeyError) if botocore renames them, instead of quietly dropping codes from the matrix.
    return list(vars(checker)[attribute])


def retry_codes(service: str) -> dict[str, int | None]:
    """Every code botocore retries for ``service`` as throttling or transient -> the status its rules pair it with
    (``None``: no rule names one). Standard mode's lists apply to every service; ``_retry.json`` contributes its
    defaults and ``service``'s own rules."""
    codes = [
        *_standard_mode_list(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES"),
        *_standard_mode_list(TransientRetryableChecker, "_TRANSIENT_ERROR_CODES"),
    ]
    for name in ("__default__", service):
        codes.extend(r["service_error_code"] for r in _conditions(name) if "service_error_code" in r)
    return {str(code): status_for(service, str(code)) for code in dict.fromkeys(codes)}


def retry_statuses() -> list[int]:
    """The bare HTTP statuses botocore retries whatever the code (``_retry.json``'s defaults, standard mode's
    transient statuses), sorted."""
    statuses = _standard_mode_list(TransientRetryableChecker, "_TRANSIENT_STATUS_CODES")
    statuses.extend(r["http_status_code"] for r in _conditions("__default__") if "service_error_code" not in r)
    return sorted({int(status) for status in statuses if status is not None})


@cache
def endpoint_url(service: str) -> str:
    """The URL a request to ``service`` goes to (what aiobotocore puts in its connection errors). Resolved by a
    client built only for that; configured endpoint overrides (``AWS_ENDPOINT_URL_*``, set by some fixtures) are
    ignored so the answer does not depend on the test order."""
    client = session().create_client(
        service,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        # botocore-stubs lacks this option (botocore has it since 1.31).
        config=Config(ignore_configured_endpoint_urls=True),  # type: ignore[call-arg]
    )
    return client.meta.endpoint_url.rstrip("/") + "/"
