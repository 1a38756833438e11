"""The fault matrix of the delivery path, generated from botocore's service models and retry rules.

A cell is one AWS call of the delivery path (:func:`operations`), one fault it can meet (:func:`faults_for`) and
how long the fault lasts (``"once"``: the next call only; ``"30s"``: every call for 30 seconds of the test's clock).
The faults of an operation are, deduplicated by code:

- ``"model"``: every error shape the service model lists for the operation (``error_shapes``), under the shape's
  name and, where the shape's ``error`` trait records another wire code (a query-compatible service's legacy code),
  under that code too;
- ``"common"``: the errors any AWS call can answer (:data:`COMMON_ERRORS`), plus every code and bare status
  botocore's retry rules treat as throttling or transient (``botocore/retries/standard.py``, ``_retry.json``);
- ``"client"``: the failures aiobotocore raises when no HTTP answer arrives (:mod:`tests.faultmatrix.transport`).

:meth:`Fault.exception` builds the exception a caller of the real client gets. Everything is deterministic: the
same botocore gives the same faults, cells and samples, in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, NamedTuple

from tests.faultmatrix import botocore_data, transport, wire

Kind = Literal["client_error", "client_side"]
Source = Literal["model", "common", "client"]
Duration = Literal["once", "30s"]

DURATIONS: tuple[Duration, ...] = ("once", "30s")

#: The AWS calls of the delivery path, by service, in the order a message meets them.
DELIVERY_PATH: dict[str, tuple[str, ...]] = {
    "sqs": (
        "ReceiveMessage",
        "ChangeMessageVisibilityBatch",
        "ChangeMessageVisibility",
        "DeleteMessageBatch",
        "SendMessage",
        "GetQueueAttributes",
    ),
    "sagemaker": (
        "ListPipelineExecutionSteps",
        "DescribePipelineExecution",
        "SendPipelineExecutionStepSuccess",
        "SendPipelineExecutionStepFailure",
    ),
}


class CommonError(NamedTuple):
    """An error any call can get, not listed in the models: ``code`` and the HTTP status it comes with; only for
    ``services`` if set. A numeric code stands for an answer without a code (botocore reports the status)."""

    code: str
    status: int
    services: frozenset[str] | None = None


#: Errors of authentication, authorisation, signing, clock skew, throttling and service health that AWS answers to
#: any call. Codes botocore's retry rules name are added from botocore itself (see :func:`faults_for`).
COMMON_ERRORS: tuple[CommonError, ...] = (
    CommonError("ThrottlingException", 400),
    CommonError("Throttling", 400),
    CommonError("RequestThrottled", 403, frozenset({"sqs"})),
    CommonError("TooManyRequestsException", 429),
    CommonError("ServiceUnavailable", 503),
    CommonError("InternalFailure", 500),
    CommonError("InternalError", 500),
    CommonError("AccessDeniedException", 400),
    CommonError("AccessDenied", 403),
    CommonError("ExpiredTokenException", 400),
    CommonError("ExpiredToken", 400),
    CommonError("InvalidClientTokenId", 403),
    CommonError("UnrecognizedClientException", 400),
    CommonError("SignatureDoesNotMatch", 403),
    CommonError("IncompleteSignature", 400),
    CommonError("RequestExpired", 400),  # the signature's date is too far from AWS's clock
    CommonError("InvalidSignatureException", 400),
    CommonError("RequestTimeTooSkewed", 403),
    CommonError("RequestTimeout", 408),
    CommonError("RequestTimeoutException", 408),
    CommonError("ValidationException", 400, frozenset({"sagemaker"})),
    CommonError("MissingAuthenticationToken", 403),
    CommonError("502", 502),  # a load balancer's page instead of the service's answer
    CommonError("504", 504),
)


@dataclass(frozen=True)
class Fault:
    """One fault an AWS call can meet.

    ``code`` is what the caller sees: ``response["Error"]["Code"]`` of a ``ClientError`` (``kind="client_error"``,
    with the HTTP ``status``), or the name of the client-side failure (``kind="client_side"``, no status).
    ``sender_fault`` is the fault side the model or AWS records (``None``: unrecorded); ``source`` says where the
    fault came from.
    """

    code: str
    status: int | None
    kind: Kind
    sender_fault: bool | None
    source: Source

    def exception(self, operation_name: str) -> Exception:
        """A fresh exception, as the service's botocore/aiobotocore client raises it from ``operation_name`` (one
        of :func:`operations`): a ``ClientError`` (the modelled subclass when the code is modelled) parsed by a real
        client from the error answer, or the botocore exception aiobotocore raises for the client-side failure."""
        service = service_of(operation_name)
        if self.kind == "client_side":
            return transport.failure(self.code, botocore_data.endpoint_url(service))
        if self.status is None:
            raise ValueError(f"{self.code}: an HTTP error needs a status")
        reply = wire.error_reply(service, operation_name, self.code, self.status, self.sender_fault)
        return wire.client_error(service, operation_name, reply)


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: ``fault`` hits ``service``'s ``operation`` for ``duration``."""

    service: str
    operation: str
    fault: Fault
    duration: Duration

    @property
    def id(self) -> str:
        """A readable, unique name for test ids and reports."""
        return f"{self.service}.{self.operation}:{self.fault.code}:{self.duration}"

    def exception(self) -> Exception:
        """The fault's exception as this cell's operation raises it (see :meth:`Fault.exception`)."""
        return self.fault.exception(self.operation)


def operations() -> list[tuple[str, str]]:
    """The (service, operation) pairs of the delivery path."""
    return [(service, operation) for service, names in DELIVERY_PATH.items() for operation in names]


def service_of(operation: str) -> str:
    """The service of a delivery-path operation (their names are unique across the two services)."""
    for service, names in DELIVERY_PATH.items():
        if operation in names:
            return service
    raise KeyError(f"{operation} is not an operation of the delivery path")


def _model_faults(service: str, operation: str) -> Iterable[Fault]:
    for error in botocore_data.modelled_errors(service, operation):
        for code in error.codes:
            # Models often record no status (SQS's records none); botocore's retry rules may pair the code with
            # one (SQS's RequestThrottled: 403), else AWS's default for a client error.
            status = error.status or botocore_data.status_for(service, code) or botocore_data.DEFAULT_STATUS
            yield Fault(code, status, "client_error", error.sender_fault, "model")


def _common_faults(service: str) -> Iterable[Fault]:
    for common in COMMON_ERRORS:
        if common.services is None or service in common.services:
            yield _common(common.code, common.status)
    for code, status in botocore_data.retry_codes(service).items():
        yield _common(code, status or botocore_data.DEFAULT_STATUS)
    for status in botocore_data.retry_statuses():
        yield _common(str(status), status)


def _common(code: str, status: int) -> Fault:
    # An answer without a code has no fault side either.
    sender_fault = None if code.isdigit() else status < 500
    return Fault(code, status, "client_error", sender_fault, "common")


def _client_faults() -> Iterable[Fault]:
    for code in transport.FAILURES:
        yield Fault(code, None, "client_side", None, "client")


@cache
def _faults(service: str, operation: str) -> tuple[Fault, ...]:
    by_code: dict[str, Fault] = {}
    # First source wins a code: the model's record of an error beats the generic one.
    for fault in (*_model_faults(service, operation), *_common_faults(service), *_client_faults()):
        by_code.setdefault(fault.code, fault)
    return tuple(sorted(by_code.values(), key=lambda fault: fault.code))


def faults_for(service: str, operation: str) -> list[Fault]:
    """Every fault ``service``'s ``operation`` can meet: model, then common, then client-side faults, one per code
    (the first source's), sorted by code."""
    return list(_faults(service, operation))


def cells() -> list[Cell]:
    """The whole matrix: operations in delivery-path order, then faults by code, then durations."""
    return [
        Cell(service, operation, fault, duration)
        for service, operation in operations()
        for fault in _faults(service, operation)
        for duration in DURATIONS
    ]


def sample(cells: Sequence[Cell], k: int, seed: int) -> list[Cell]:
    """``k`` of ``cells`` (all of them if ``k`` is larger), the same for the same arguments, in their order.

    Stratified: first one cell per operation and duration (every operation once before any twice), then one per
    fault code not yet drawn, then seeded random cells up to ``k``. So if ``k`` allows, every operation, every
    operation and duration and every fault code is in the sample; strata picks prefer codes not drawn yet, which keeps
    the ``k`` that allows it small.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    pool = list(dict.fromkeys(cells))
    if k >= len(pool):
        return pool
    rng = random.Random(seed)
    chosen: dict[Cell, None] = {}
    drawn: set[str] = set()

    def draw(candidates: list[Cell]) -> None:
        candidates = [cell for cell in candidates if cell not in chosen]
        if len(chosen) < k and candidates:
            fresh = [cell for cell in candidates if cell.fault.code not in drawn] or candidates
            cell = rng.choice(fresh)
            chosen[cell] = None
            drawn.add(cell.fault.code)

    ops = list(dict.fromkeys((cell.service, cell.operation) for cell in pool))
    for duration in dict.fromkeys(cell.duration for cell in pool):
        for service, operation in ops:
            draw([c for c in pool if (c.service, c.operation, c.duration) == (service, operation, duration)])
    for code in sorted({cell.fault.code for cell in pool} - drawn):
        draw([cell for cell in pool if cell.fault.code == code])
    rest = [cell for cell in pool if cell not in chosen]
    chosen.update(dict.fromkeys(rng.sample(rest, k - len(chosen))))
    return [cell for cell in pool if cell in chosen]


SOURCES: tuple[Source, ...] = ("model", "common", "client")


def _by_source(faults: Iterable[Fault]) -> str:
    """How many distinct codes each source gave; a code that is modelled for one service and common for another
    (SQS models ``RequestThrottled``) counts once, under the model."""
    source_of: dict[str, int] = {}
    for fault in faults:
        source_of[fault.code] = min(source_of.get(fault.code, len(SOURCES)), SOURCES.index(fault.source))
    counts = {source: sum(rank == index for rank in source_of.values()) for index, source in enumerate(SOURCES)}
    return f"{counts['model']} from the service models, {counts['common']} common, {counts['client']} client-side"


def _size(cells: Sequence[Cell], faults: str, operations: int | None = None) -> str:
    """``cells``' size: as a product when they are every combination of their faults and durations (a full
    matrix), else as counts (a sample)."""
    durations = len({cell.duration for cell in cells})
    full = len(cells) == len({(c.service, c.operation, c.fault) for c in cells}) * durations
    if full:
        ops = "" if operations is None else f"{operations} operations x "
        return f"{ops}{faults} x {durations} durations = {len(cells)} cells"
    ops = "" if operations is None else f"{operations} operations, "
    return f"{len(cells)} cells: {ops}{faults}, {durations} durations"


def describe(cells: Sequence[Cell]) -> str:
    """The matrix's size, overall and by operation, for a report. Counts come from ``cells``, so a sample is
    described as it is (as counts, not as a product)."""
    if not cells:
        return "0 cells"
    per_op: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        per_op.setdefault((cell.service, cell.operation), []).append(cell)
    faults = {cell.fault for cell in cells}
    sizes = sorted(len({cell.fault for cell in group}) for group in per_op.values())
    span = f"{sizes[0]}" if sizes[0] == sizes[-1] else f"{sizes[0]}-{sizes[-1]}"
    codes = f"{len({fault.code for fault in faults})} distinct fault codes: {_by_source(faults)}"
    lines = [f"{_size(cells, f'{span} faults', len(per_op))} ({codes})"]
    width = max(len(f"{service}.{operation}") for service, operation in per_op)
    for (service, operation), group in per_op.items():
        op_faults = {cell.fault for cell in group}
        name = f"{service}.{operation}"
        lines.append(f"  {name:<{width}}  {_size(group, f'{len(op_faults)} faults')} ({_by_source(op_faults)})")
    return "\n".join(lines)
