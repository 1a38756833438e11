"""``send-test-message``: put a well-formed callback message on a queue, to try a worker and its handlers locally.

When the SageMaker endpoint is the local emulator (``callback-worker dev``, ``callback-worker emulate``) and none of
``--token``, ``--execution-arn``, ``--stopping``, ``--bare`` is given, the message is sent by a real one-step pipeline
execution (:mod:`callback_worker.ops.testpipeline`): its token is real, so a worker that verifies tokens runs its
handler and the step shows the answer. Otherwise the body is what a CallbackStep sends (``token``,
``pipelineExecutionArn``, ``arguments``, ``status``), checked with the worker's own parser and sent as is. SageMaker
does not know that token unless ``--token`` names a live one: a worker verifying tokens runs no handler for it, and
one that does not gets ``ResourceNotFound`` when it answers.
"""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any

from callback_worker.ops.aws import guarded, sqs_client
from callback_worker.ops.errors import ExitCode
from callback_worker.ops.inputs import check_execution_arn, check_token, new_token, parse_arguments, parse_pairs
from callback_worker.ops.tables import complain, emit
from callback_worker.ops.testpipeline import probe_emulator, start_test_execution, started_json, started_text
from callback_worker.ops.views import sent_json, sent_text
from callback_worker.worker.handler import JSONValue
from callback_worker.worker.message import Status, parse_message

#: Account and pipeline of the made-up execution ARN used when none is given.
TEST_ACCOUNT = "000000000000"
TEST_PIPELINE = "callback-worker-test"


@guarded
def send_test_message(args: argparse.Namespace) -> int:
    """``send-test-message --queue-url URL [--token T] [--execution-arn ARN] [--argument N=V]... [--stopping]
    [--bare]``."""
    token = check_token(args.token) if args.token is not None else new_token()
    arn = check_execution_arn(args.execution_arn) if args.execution_arn is not None else None
    arguments = parse_arguments(parse_pairs(args.arguments or [], "--argument"))
    if args.token is None and arn is None and not (args.stopping or args.bare):
        probe = probe_emulator()
        if probe.client is not None:
            execution_arn = start_test_execution(probe.client, args.queue_url, arguments)
            emit((started_json if args.json else started_text)(execution_arn, args.queue_url, arguments))
            return ExitCode.OK
        if probe.problem is not None:
            complain(f"note: {probe.problem}; sending a bare message with a made-up token")
    client = sqs_client()
    body = message_body(token, arn or made_up_execution_arn(client.meta.region_name), arguments, stopping=args.stopping)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    parse_message(text)  # what the worker cannot read is not worth sending
    request: dict[str, Any] = {"QueueUrl": args.queue_url, "MessageBody": text}
    if args.queue_url.endswith(".fifo"):
        request |= {"MessageGroupId": TEST_PIPELINE, "MessageDeduplicationId": secrets.token_hex(16)}
    message_id = str(client.send_message(**request)["MessageId"])
    show = sent_json if args.json else sent_text
    emit(show(message_id, args.queue_url, body))
    return ExitCode.OK


def message_body(token: str, execution_arn: str, arguments: dict[str, JSONValue], *, stopping: bool) -> dict[str, Any]:
    """The body a CallbackStep sends."""
    return {
        "token": token,
        "pipelineExecutionArn": execution_arn,
        "arguments": arguments,
        "status": (Status.STOPPING if stopping else Status.EXECUTING).value,
    }


def made_up_execution_arn(region: str) -> str:
    """A made-up execution ARN of pipeline ``callback-worker-test`` with a fresh execution id."""
    return f"arn:aws:sagemaker:{region}:{TEST_ACCOUNT}:pipeline/{TEST_PIPELINE}/execution/{secrets.token_hex(6)}"
