"""worker/retrying.py: transient-error classification on real botocore errors, and backoff bounds."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from callback_worker.worker.retrying import THROTTLING_CODES, Backoff, error_code, is_transient


def client_error(
    code: str, status: int | None = 400, operation: str = "SendPipelineExecutionStepSuccess"
) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": f"{code} happened"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": "r-1"}
    return ClientError(response, operation)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES))
def test_throttling_codes_are_transient(code: str) -> None:
    assert is_transient(client_error(code, 400))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient_whatever_the_code(status: int) -> None:
    assert is_transient(client_error("SomethingOdd", status))


@pytest.mark.parametrize(
    "code",
    [
        "ConflictException",
        "ResourceNotFound",
        "ResourceLimitExceeded",
        "ValidationException",
        "AccessDeniedException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "ReceiptHandleIsInvalid",
    ],
)
def test_client_faults_are_not_transient(code: str) -> None:
    assert not is_transient(client_error(code, 400))


def test_missing_response_metadata_falls_back_to_the_code() -> None:
    assert is_transient(client_error("ThrottlingException", None))
    assert not is_transient(client_error("ValidationException", None))


def test_error_code() -> None:
    assert error_code(client_error("ConflictException")) == "ConflictException"
    assert error_code(client_error("")) == "ClientError"
    assert error_code(ValueError("x")) == "ValueError"


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        aiohttp.ClientConnectionError("reset"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        ConnectionResetError(),
        ConnectionRefusedError(),
    ],
    ids=type,
)
def test_transport_errors_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [NoCredentialsError(), ParamValidationError(report="bad"), ValueError("x"), KeyError("k"), RuntimeError()],
    ids=type,
)
def test_other_errors_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


def test_local_os_errors_are_not_transient() -> None:
    assert not is_transient(FileNotFoundError("x"))
    assert not is_transient(PermissionError("x"))


def test_http_429_is_transient_whatever_the_code() -> None:
    assert is_transient(client_error("SlowDownPlease", status=429))


# --- Backoff ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_backoff_bounds(seed: int) -> None:
    backoff = Backoff(base=0.2, cap=5.0, rng=random.Random(seed))
    for failures in range(40):
        ceiling = min(5.0, 0.2 * 2**failures)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.failures == 32


def test_backoff_grows_then_caps() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] <= 1.0
    assert delays[3] >= 4.0
    assert all(4.0 <= delay <= 8.0 for delay in delays[3:])


def test_backoff_is_jittered() -> None:
    backoff = Backoff(base=1.0, cap=1.0, rng=random.Random(7))
    assert len({backoff.next_delay() for _ in range(20)}) > 1


def test_backoff_reset() -> None:
    backoff = Backoff(base=0.5, cap=100.0, rng=random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 0.5


async def test_backoff_sleep_sleeps_the_next_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("callback_worker.worker.retrying.asyncio.sleep", fake_sleep)
    backoff = Backoff(base=2.0, cap=10.0, rng=random.Random(0))
    await backoff.sleep()
    await backoff.sleep()
    assert len(slept) == 2
    assert 1.0 <= slept[0] <= 2.0
    assert 2.0 <= slept[1] <= 4.0
    assert backoff.failures == 2
