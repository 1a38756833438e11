"""``dlq redrive`` stopped half-way, for real, then resumed: nothing is lost, and nothing is duplicated except the
one message whose delete failed after its copy was sent.

The receive/send/delete fallback runs against the moto server through a fault proxy: once with the fourth delete
refused (the command stops with an error, exit 1), once as a subprocess that gets Ctrl-C (SIGINT) while the proxy
holds its fourth send (the command finishes that message, then stops, exit 130). Each time a second ``redrive``
finishes the job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from callback_worker.ops import ExitCode, main
from tests.dlq_support import Queues, body_counts, callback_body, depth, drain, make_queues, visible
from tests.faultproxy import FaultProxy, Rule

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

REPO = Path(__file__).resolve().parents[2]
MESSAGES = 10


@pytest.fixture
def direct(moto_server: str) -> Iterator[SQSClient]:
    """Straight to moto: what the queues really hold."""
    client = boto3.client("sqs", endpoint_url=moto_server)
    yield client
    client.close()


@pytest.fixture
async def proxy(moto_server: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(moto_server) as proxy:
        yield proxy


@pytest.fixture
def filled(direct: SQSClient) -> tuple[Queues, list[str]]:
    """A source queue and a dead-letter queue holding ten distinct callback messages."""
    queues = make_queues(direct)
    bodies = [callback_body(f"Redrive{index:03d}", f"arn-{index}") for index in range(MESSAGES)]
    for body in bodies:
        direct.send_message(QueueUrl=queues.dlq, MessageBody=body)
    return queues, bodies


async def test_a_refused_delete_stops_the_redrive_and_the_resumed_one_duplicates_only_that_message(
    proxy: FaultProxy,
    direct: SQSClient,
    filled: tuple[Queues, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queues, bodies = filled
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
    refused = proxy.add(Rule("DeleteMessage", "error", code="AccessDenied", after=3))

    code = await asyncio.to_thread(main, ["dlq", "redrive", "--queue-url", queues.source])
    out, err = capsys.readouterr()
    assert (code, out, refused.fired) == (ExitCode.ERROR, "", 1)
    assert "was copied to" in err
    assert "a later redrive copies it again (one duplicate delivery)" in err
    assert err.endswith("callback-worker: AccessDenied: injected fault\n")
    assert depth(direct, queues.source) == 4
    assert visible(direct, queues.dlq) == MESSAGES - 3  # the batch's rest released at once, the copied one too

    code = await asyncio.to_thread(main, ["dlq", "redrive", "--queue-url", queues.source])
    assert (code, capsys.readouterr().out) == (ExitCode.OK, f"moved 7 message(s) from {queues.dlq} to "
                                                            f"{queues.source} (receive/send/delete)\n")  # fmt: skip
    assert depth(direct, queues.dlq) == 0
    counts = body_counts(drain(direct, queues.source))
    assert set(counts) == set(bodies)  # nothing lost
    assert sorted(counts.values()) == [1] * (MESSAGES - 1) + [2]  # the one whose delete failed, twice


async def test_ctrl_c_during_a_send_finishes_that_message_and_the_resumed_redrive_duplicates_nothing(
    proxy: FaultProxy, direct: SQSClient, filled: tuple[Queues, list[str]]
) -> None:
    queues, bodies = filled
    held = proxy.add(Rule("SendMessage", "slow", delay=1.5, after=3))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": proxy.url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callback_worker.cli", "dlq", "redrive", "--queue-url", queues.source,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        while held.fired < 1:  # the fourth send has reached the proxy, which holds it
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
    assert (process.returncode, out, err) == (ExitCode.INTERRUPTED, b"", b"callback-worker: interrupted\n")
    assert held.fired == 1
    assert depth(direct, queues.source) == 4
    assert visible(direct, queues.dlq) == MESSAGES - 4

    code = await asyncio.to_thread(main, ["dlq", "redrive", "--queue-url", queues.source, "--json"])
    assert code == ExitCode.OK
    assert depth(direct, queues.dlq) == 0
    assert body_counts(drain(direct, queues.source)) == dict.fromkeys(bodies, 1)
