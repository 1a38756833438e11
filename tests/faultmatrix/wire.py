"""HTTP error answers turned into exceptions by a real botocore client, without a server.

:func:`client_error` hands one error answer (status, headers, body) to a botocore client of the service through its
``before-send`` event, so botocore's own parser, its SQS query-compatibility handler and its exception factory build
the ``ClientError`` (a modelled subclass such as ``QueueDoesNotExist`` where the code is modelled): the exception a
caller of the real client gets. aiobotocore shares these parts with botocore, so its clients raise the same.

The client's own retries are off (``total_max_attempts=1``, as the worker's SageMaker client has them), so the
response carries ``RetryAttempts: 0`` and ``MaxAttemptsReached: True``. The exception classes are those of this
module's botocore session: compare codes, or catch ``ClientError``; another client's ``exceptions.X`` is another class.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore import xform_name
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.faultmatrix.botocore_data import REGION, is_query_compatible, modelled_errors, service_model, session

#: The client's endpoint: the discard port on loopback. The ``before-send`` hook answers every request before it
#: is sent; were it ever bypassed, the request would be refused locally instead of reaching AWS.
NOWHERE = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer as a server would send it."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


#: The answer the next request of this context gets (a context variable, so concurrent builders do not mix).
_PENDING: ContextVar[Reply | None] = ContextVar("faultmatrix_pending_reply", default=None)


class _Body:
    """The raw stream ``AWSResponse`` reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
    reply = _PENDING.get()
    if reply is None:
        raise RuntimeError("the fault matrix's botocore client sends nothing without a pending reply")
    return AWSResponse(request.url, reply.status, HTTPHeaders.from_dict(reply.headers), _Body(reply.body))


@cache
def _client(service: str) -> BaseClient:
    client = session().create_client(
        service,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url=NOWHERE,
        # Parameters are not validated: the call exists only to carry the answer through the parser.
        config=Config(parameter_validation=False, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    # botocore sends the response a before-send handler returns instead of the request; the stubs type every
    # handler as returning None.
    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register(event, _answer)  # type: ignore[arg-type]
    return client


def client_error(service: str, operation: str, reply: Reply) -> ClientError:
    """The exception ``service``'s client raises from ``operation`` when the server answers ``reply``."""
    token = _PENDING.set(reply)
    try:
        getattr(_client(service), xform_name(operation))()
    except ClientError as exc:
        # Fresh, as if not raised yet: the traceback would keep botocore's frames (and the client) alive.
        exc.__traceback__ = None
        return exc
    finally:
        _PENDING.reset(token)
    raise AssertionError(f"{service} {operation} accepted HTTP {reply.status}: not an error answer")


def request_id(operation: str, code: str) -> str:
    """A request id that is the same in every run for the same fault (reports and snapshots stay stable)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"faultmatrix/{operation}/{code}"))


def error_reply(service: str, operation: str, code: str, status: int, sender_fault: bool | None) -> Reply:
    """The answer an AWS JSON-protocol service gives for the error ``code``.

    A numeric ``code`` stands for an answer without one (a load balancer's HTML page, say): botocore then reports
    the status as the code. Query-compatible services (SQS) also send ``x-amzn-query-error: <code>;<Sender|Receiver>``,
    from which botocore takes the code it reports; a legacy code travels there with its shape's name as ``__type``.
    """
    if code.isdigit():
        page = f"<html><body><h1>{status} {http.client.responses.get(status, '')}</h1></body></html>"
        return Reply(status, page.encode(), {"content-type": "text/html"})
    json_version = service_model(service).metadata.get("jsonVersion", "1.0")
    headers = {
        "content-type": f"application/x-amz-json-{json_version}",
        "x-amzn-requestid": request_id(operation, code),
    }
    shape = next((e.shape for e in modelled_errors(service, operation) if code in e.codes[1:]), code)
    if is_query_compatible(service):
        sender = sender_fault if sender_fault is not None else status < 500
        headers["x-amzn-query-error"] = f"{code};{'Sender' if sender else 'Receiver'}"
    body = {"__type": shape, "message": f"fault matrix: {code} on {operation}"}
    return Reply(status, json.dumps(body).encode(), headers)
