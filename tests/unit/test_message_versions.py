"""A continuation written by a newer version, read by this one (deploy/README.md, "Upgrade and rollback"): members
this version does not know are ignored, the ones it knows are read as written, and the seal, which covers the unknown
members too, checks out — so a rolled-back replica carries on the chains a newer one queued."""

from __future__ import annotations

import json
from typing import Any

from callback_worker.worker.message import CONTINUATION_KEY, SEAL_KEY, Continuation, parse_message, sealed_payload
from callback_worker.worker.signing import Keyring

TOKEN = "26vcYbeWsZ"
ARN = "arn:aws:sagemaker:us-east-2:012345678901:pipeline/callback-pipeline/execution/7pinimwddh3a"
KEYRING = Keyring([b"k" * 32])


def newer_body() -> str:
    """A body as a later version might write it: today's members, plus members and a nested shape unknown here."""
    continuation: dict[str, Any] = {
        **Continuation(attempt=2, continuations=3, state={"job": "j-1"}, origin_message_id="m-0", link=3).to_json(),
        "wait": 30.0,
        "priority": "high",
        "trace": {"parent": "00-abc-def-01", "hops": [1, 2]},
    }
    document: dict[str, Any] = {
        "token": TOKEN,
        "pipelineExecutionArn": ARN,
        "arguments": {"handler": "echo"},
        "status": "Executing",
        CONTINUATION_KEY: continuation,
    }
    fields = {key.lower(): value for key, value in document.items()}
    continuation[SEAL_KEY] = KEYRING.sign(sealed_payload(fields))
    return json.dumps(document)


def test_unknown_members_are_ignored_and_the_seal_over_them_checks_out() -> None:
    message = parse_message(newer_body(), KEYRING)

    assert message.distrusted is None
    assert message.continuation == Continuation(
        attempt=2, continuations=3, state={"job": "j-1"}, origin_message_id="m-0", link=3, wait=30.0
    )
