"""Client-side failures: what a call on an aiobotocore client raises when no HTTP answer arrives.

aiobotocore (``aiobotocore/httpsession.py``) catches aiohttp's failures and raises botocore's exceptions in their
place: ``ServerDisconnectedError`` and ``ClientPayloadError`` become ``ConnectionClosedError``, a
``ServerTimeoutError`` a ``ConnectTimeoutError`` or ``ReadTimeoutError`` (by its message), ``asyncio.TimeoutError``
a ``ReadTimeoutError``, ``ClientConnectorError`` and other ``ClientConnectionError``\\ s an
``EndpointConnectionError``, and so on. Each builder here makes the underlying failure first and wraps it the same
way: in ``kwargs["error"]`` and as ``__context__`` (aiobotocore raises inside its ``except`` clause). Credential
failures happen while signing, before any connection, and are raised as they are.

A fault's code names the failure as it happens on the wire (``ServerDisconnectedError``, ``ConnectionResetError``),
so two faults can raise the same botocore class from different causes.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable

from aiohttp import (
    ClientConnectorCertificateError,
    ClientConnectorDNSError,
    ClientConnectorError,
    ClientOSError,
    ClientPayloadError,
    ClientProxyConnectionError,
    ConnectionTimeoutError,
    ServerDisconnectedError,
    SocketTimeoutError,
)
from aiohttp.client_reqrep import ConnectionKey
from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from yarl import URL

#: The proxy named in proxy failures (masked the way aiobotocore masks it: no credentials in it).
PROXY_URL = "http://proxy.example.internal:3128"
#: ECS's container credentials endpoint, which the ``container-role`` provider asks.
CONTAINER_CREDENTIALS_URL = "http://169.254.170.2/v2/credentials/faultmatrix"


def _key(url: str) -> ConnectionKey:
    """aiohttp's pool key for a connection to ``url`` (its connector errors carry one)."""
    parsed = URL(url)
    return ConnectionKey(
        host=parsed.host or "",
        port=parsed.port,
        is_ssl=parsed.scheme == "https",
        ssl=True,
        proxy=None,
        proxy_auth=None,
        proxy_headers_hash=None,
    )


def _wrapped(raised: Exception, cause: BaseException) -> Exception:
    raised.__context__ = cause
    return raised


def _refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")


def _reset() -> ClientOSError:
    # aiohttp's protocol turns the OS's ECONNRESET into a ClientOSError, keeping the original as its cause.
    error = ClientOSError(errno.ECONNRESET, "Connection reset by peer")
    error.__cause__ = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    return error


def _dns(url: str) -> Exception:
    cause = ClientConnectorDNSError(_key(url), socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    return _wrapped(EndpointConnectionError(endpoint_url=url, error=cause), cause)


def _connector(url: str) -> Exception:
    cause = ClientConnectorError(_key(url), _refused())
    return _wrapped(EndpointConnectionError(endpoint_url=url, error=cause), cause)


def _connection_reset(url: str) -> Exception:
    cause = _reset()
    return _wrapped(EndpointConnectionError(endpoint_url=url, error=cause), cause)


def _closed(url: str, cause: Exception) -> Exception:
    request = AWSPreparedRequest("POST", url, HTTPHeaders(), b"{}", stream_output=False)
    return _wrapped(ConnectionClosedError(error=cause, request=request, endpoint_url=url), cause)


def _payload_cut(url: str) -> Exception:
    return _closed(url, ClientPayloadError("Response payload is not completed: <ContentLengthError: 400>"))


def _disconnected(url: str) -> Exception:
    return _closed(url, ServerDisconnectedError())


def _read_timeout(url: str) -> Exception:
    cause = SocketTimeoutError("Timeout on reading data from socket")
    return _wrapped(ReadTimeoutError(endpoint_url=url, error=cause), cause)


def _total_timeout(url: str) -> Exception:
    # asyncio.TimeoutError, which aiohttp raises when the request's total timeout expires, is TimeoutError.
    cause = TimeoutError()
    return _wrapped(ReadTimeoutError(endpoint_url=url, error=cause), cause)


def _connect_timeout(url: str) -> Exception:
    # aiobotocore tells a connect timeout from a read timeout by this message's first word.
    cause = ConnectionTimeoutError(f"Connection timeout to host {url}")
    return _wrapped(ConnectTimeoutError(endpoint_url=url, error=cause), cause)


def _proxy(url: str) -> Exception:
    cause = ClientProxyConnectionError(_key(PROXY_URL), _refused())
    return _wrapped(ProxyConnectionError(proxy_url=PROXY_URL, error=cause), cause)


def _tls(url: str) -> Exception:
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    cause = ClientConnectorCertificateError(_key(url), verify)
    return _wrapped(SSLError(endpoint_url=url, error=cause), cause)


def _container_credentials(url: str) -> Exception:
    message = f'Error retrieving metadata: Connect timeout on endpoint URL: "{CONTAINER_CREDENTIALS_URL}"'
    return CredentialRetrievalError(provider="container-role", error_msg=message)


def _no_credentials(url: str) -> Exception:
    return NoCredentialsError()


#: Code -> builder of the exception, given the URL of the request that failed. ``EndpointConnectionError`` is a DNS
#: failure, ``ClientConnectorError`` a refused connection, ``ConnectionResetError`` a reset while awaiting the answer,
#: ``ConnectionClosedError`` a body cut short, ``ServerDisconnectedError`` a close without an answer,
#: ``ReadTimeoutError`` a socket read timeout and ``TimeoutError`` the request's total timeout.
FAILURES: dict[str, Callable[[str], Exception]] = {
    "EndpointConnectionError": _dns,
    "ClientConnectorError": _connector,
    "ConnectionResetError": _connection_reset,
    "ConnectionClosedError": _payload_cut,
    "ServerDisconnectedError": _disconnected,
    "ReadTimeoutError": _read_timeout,
    "TimeoutError": _total_timeout,
    "ConnectTimeoutError": _connect_timeout,
    "ProxyConnectionError": _proxy,
    "SSLError": _tls,
    "CredentialRetrievalError": _container_credentials,
    "NoCredentialsError": _no_credentials,
}


def failure(code: str, url: str) -> Exception:
    """The exception a call to ``url`` raises for the client-side failure ``code`` (a key of :data:`FAILURES`)."""
    return FAILURES[code](url)
