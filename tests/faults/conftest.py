"""The deterministic fault tier: each scenario fails one chosen call (or places one race) and checks what follows.

The worker runs in-process against real servers over HTTP — moto for SQS, the project's emulator for SageMaker —
each behind a :class:`~tests.faultproxy.FaultProxy` that fails exactly the calls a scenario scripts. The test's own
clients talk to the servers directly, so only the worker sees the faults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callback_worker.emulator.server import EmulatorServer
from tests.faultproxy import FaultProxy
from tests.integration.conftest import loop_emulator, make_queue, sagemaker, sqs

__all__ = ["loop_emulator", "make_queue", "sagemaker", "sqs"]


@pytest.fixture
async def sqs_faults(
    moto_server: str, loop_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of moto; workers started after this fixture send their SQS calls through it (the
    emulator, already running, still sends its callback messages to moto directly)."""
    async with FaultProxy(moto_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        yield proxy


@pytest.fixture
async def sagemaker_faults(loop_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the emulator; workers started after this fixture call SageMaker through it."""
    async with FaultProxy(loop_emulator.endpoint_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", proxy.url)
        yield proxy
