"""The worker's AWS clients as they go over HTTP: the User-Agent they send."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest

from callback_worker.emulator.server import EmulatorServer
from callback_worker.worker.clients import aws_clients


async def sent_user_agents() -> dict[str, str]:
    """The User-Agent header of one call by each client, read from the request as it is sent."""
    seen: dict[str, str] = {}
    async with aws_clients(10) as (sqs, sagemaker):
        for name, client in (("sqs", sqs), ("sagemaker", sagemaker)):

            def record(request: Any, service: str = name, **_: Any) -> None:
                seen[service] = request.headers["User-Agent"].decode()

            client.meta.events.register("before-send", record)
        await sqs.list_queues()
        await sagemaker.list_pipelines()
    return seen


@pytest.mark.usefixtures("loop_emulator")
async def test_clients_name_the_worker_and_its_sdk() -> None:
    agents = await sent_user_agents()

    assert set(agents) == {"sqs", "sagemaker"}
    for agent in agents.values():
        assert agent.startswith(f"sagemaker-callback-worker/{version('sagemaker-callback-worker')} aiobotocore/")
        words = agent.split()
        assert len(words) == len(set(words)), agent
        assert any(word.startswith("botocore/") for word in words)
        assert not any(word.startswith("app/") for word in words)


async def test_clients_carry_the_sdk_app_id(loop_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "ml-platform")

    agents = await sent_user_agents()

    assert all("app/ml-platform" in agent.split() for agent in agents.values()), agents
