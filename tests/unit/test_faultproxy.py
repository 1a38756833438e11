"""tests/faultproxy.py against a real moto server: each fault kind, rule counting, and plain pass-through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, ReadTimeoutError

from tests.faultproxy import FaultProxy, Rule

if TYPE_CHECKING:
    from aiobotocore.session import ClientCreatorContext
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef


def client(endpoint: str, attempts: int = 1, read_timeout: float = 60) -> ClientCreatorContext[SQSClient]:
    # total_max_attempts counts the first attempt; retries' "max_attempts" would count only the retries.
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=read_timeout)
    return get_session().create_client("sqs", endpoint_url=endpoint, region_name="us-east-1", config=config)


@pytest.fixture
async def proxy(moto_server: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(moto_server) as proxy:
        yield proxy


@pytest.fixture
async def sqs(proxy: FaultProxy) -> AsyncIterator[SQSClient]:
    """Through the proxy, one attempt per call: every injected failure reaches the test."""
    async with client(proxy.url) as sqs:
        yield sqs


@pytest.fixture
async def direct(moto_server: str) -> AsyncIterator[SQSClient]:
    """Straight to moto: what the server really holds."""
    async with client(moto_server) as sqs:
        yield sqs


async def bodies(direct: SQSClient, queue_url: str) -> list[str]:
    """Every message in the queue (left visible)."""
    reply = await direct.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return sorted(message["Body"] for message in reply.get("Messages", []))


@pytest.mark.parametrize(
    "expected", [("InternalError", 500), ("ThrottlingException", 400), ("KMS.AccessDeniedException", 400)]
)
async def test_error_answers_the_code_without_forwarding(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str, expected: tuple[str, int]
) -> None:
    code, status = expected
    proxy.add(Rule("SendMessage", "error", code=code))
    with pytest.raises(ClientError) as failure:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="lost")
    assert failure.value.response["Error"]["Code"] == code
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert await bodies(direct, queue_url) == []


async def test_lost_reply_applies_the_call_but_reports_a_failure(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    proxy.add(Rule("SendMessage", "lost_reply"))
    with pytest.raises(ClientError) as failure:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="sent")
    assert failure.value.response["Error"]["Code"] == "InternalError"
    assert await bodies(direct, queue_url) == ["sent"]


async def test_lost_reply_retried_send_sends_two_copies(proxy: FaultProxy, direct: SQSClient, queue_url: str) -> None:
    proxy.add(Rule("SendMessage", "lost_reply"))
    async with client(proxy.url, attempts=2) as retrying:
        await retrying.send_message(QueueUrl=queue_url, MessageBody="twice")
    assert [call.fault for call in proxy.calls] == ["lost_reply", None]
    assert await bodies(direct, queue_url) == ["twice", "twice"]


async def test_entry_error_fails_only_the_chosen_entry(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    for body in ("a", "b"):
        await direct.send_message(QueueUrl=queue_url, MessageBody=body)
    received = await direct.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
        {"Id": message["Body"], "ReceiptHandle": message["ReceiptHandle"]} for message in received["Messages"]
    ]
    proxy.add(Rule("DeleteMessageBatch", "entry_error", entries={"b"}, code="ReceiptHandleIsInvalid"))

    reply = await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    assert [entry["Id"] for entry in reply["Successful"]] == ["a"]
    assert reply["Failed"] == [
        {"Id": "b", "Code": "ReceiptHandleIsInvalid", "Message": "injected fault", "SenderFault": False}
    ]
    assert proxy.calls[-1].body["Entries"] == entries  # recorded as the client sent it
    assert await bodies(direct, queue_url) == ["b"]


async def test_entry_error_on_every_entry_does_not_call_the_server(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    await direct.send_message(QueueUrl=queue_url, MessageBody="kept")
    received = await direct.receive_message(QueueUrl=queue_url, VisibilityTimeout=0)
    entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
        {"Id": "only", "ReceiptHandle": received["Messages"][0]["ReceiptHandle"]}
    ]
    proxy.add(Rule("DeleteMessageBatch", "entry_error"))

    reply = await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    assert reply["Successful"] == []
    assert [(entry["Id"], entry["Code"]) for entry in reply["Failed"]] == [("only", "InternalError")]
    assert await bodies(direct, queue_url) == ["kept"]


async def test_slow_delays_the_call_then_forwards_it(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    proxy.add(Rule("SendMessage", "slow", delay=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sqs.send_message(QueueUrl=queue_url, MessageBody="late")
    assert loop.time() - started >= 0.3
    assert await bodies(direct, queue_url) == ["late"]


async def test_slow_call_times_out_in_the_client_yet_lands(
    proxy: FaultProxy, direct: SQSClient, queue_url: str
) -> None:
    proxy.add(Rule("SendMessage", "slow", delay=0.5))
    async with client(proxy.url, read_timeout=0.1) as impatient:
        with pytest.raises(ReadTimeoutError):
            await impatient.send_message(QueueUrl=queue_url, MessageBody="landed")
    async with asyncio.timeout(5):
        while not proxy.calls:  # recorded once the proxy has forwarded it and answered
            await asyncio.sleep(0.05)
    assert await bodies(direct, queue_url) == ["landed"]


async def test_after_skips_then_times_fails(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    rule = proxy.add(Rule("SendMessage", "error", after=1, times=2))
    for body in ("1", "2", "3", "4"):
        with contextlib.suppress(ClientError):
            await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    assert [call.fault for call in proxy.calls] == [None, "error", "error", None]
    assert (rule.matched, rule.fired, proxy.rules) == (3, 2, [])


async def test_rules_are_consumed_in_order_and_cleared(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    proxy.add(Rule("*", "error", code="ThrottlingException"))
    proxy.add(Rule("SendMessage", "error", when=lambda body: body.get("MessageBody") == "poison"))
    proxy.add(Rule("SendMessage", "error", times=10))
    codes = []
    for body in ("first", "ok", "poison", "third"):
        with pytest.raises(ClientError) as failure:
            await sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        codes.append(failure.value.response["Error"]["Code"])
    proxy.clear()
    await sqs.send_message(QueueUrl=queue_url, MessageBody="healed")
    assert codes == ["ThrottlingException", "InternalError", "InternalError", "InternalError"]
    assert [call.fault for call in proxy.calls] == ["error"] * 4 + [None]


async def test_unmatched_calls_pass_through_and_are_recorded(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    proxy.add(Rule("DeleteMessage", "error"))
    await sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    received = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
    with pytest.raises(ClientError) as failure:  # the server's own error comes back intact
        await sqs.get_queue_url(QueueName="no-such-queue")

    assert [message["Body"] for message in received["Messages"]] == ["hello"]
    assert failure.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert [(call.operation, call.status, call.fault) for call in proxy.calls] == [
        ("SendMessage", 200, None),
        ("ReceiveMessage", 200, None),
        ("GetQueueUrl", 400, None),
    ]
    assert proxy.calls[0].body == {"QueueUrl": queue_url, "MessageBody": "hello"}
    assert proxy.calls[0].time <= proxy.calls[1].time <= proxy.calls[2].time
    assert (proxy.count("SendMessage"), proxy.count("DeleteMessage"), proxy.count("*")) == (1, 0, 3)
