"""What a queue's attributes mean for the worker, one finding each: FIFO (cannot work), the redrive policy, the
visibility timeout against the settings, encryption and delay."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callback_worker.config.settings import Settings, env_name
from callback_worker.worker.preflight import Finding, Level


def queue_findings(attributes: Mapping[str, str], settings: Settings) -> list[Finding]:
    """What the queue's attributes mean for the worker, one finding each."""
    findings = [_fifo(attributes), _redrive(attributes), _visibility(attributes, settings), _encryption(attributes)]
    delay = int(attributes.get("DelaySeconds", "0") or 0)
    if delay:
        findings.append(Finding(Level.NOTE, "queue", f"DelaySeconds={delay}: each callback waits that long first"))
    return [finding for finding in findings if finding is not None]


def _fifo(attributes: Mapping[str, str]) -> Finding | None:
    if attributes.get("FifoQueue", "false").lower() != "true":
        return None
    return Finding(
        Level.FAIL,
        "queue",
        "a FIFO queue cannot take callback messages (SageMaker sends no MessageGroupId; continuations use "
        f"DelaySeconds); point {env_name('queue_url')} at a standard queue",
    )


def _redrive(attributes: Mapping[str, str]) -> Finding:
    policy = parse_redrive(attributes)
    if policy is None:
        return Finding(
            Level.WARN,
            "queue",
            "no redrive policy: a message no worker can read is received forever; give the queue a dead-letter "
            "queue (RedrivePolicy with maxReceiveCount)",
        )
    count, target = policy.get("maxReceiveCount"), policy.get("deadLetterTargetArn")
    return Finding(Level.OK, "queue", f"redrive policy: after {count} receives to {target}")


def parse_redrive(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The queue's redrive policy, or None when it has none (or one that is not a JSON object)."""
    try:
        policy = json.loads(attributes.get("RedrivePolicy") or "null")
    except ValueError:
        return None
    return policy if isinstance(policy, dict) else None


def _visibility(attributes: Mapping[str, str], settings: Settings) -> Finding:
    queue = attributes.get("VisibilityTimeout", "?")
    setting = f"{env_name('visibility_timeout')}={settings.visibility_timeout}"
    if queue == str(settings.visibility_timeout):
        return Finding(Level.OK, "queue", f"VisibilityTimeout {queue} s, as {setting}")
    return Finding(
        Level.NOTE,
        "queue",
        f"VisibilityTimeout is {queue} s; the worker asks for {setting} s on each receive (the queue's own value "
        "applies only to other consumers); set both alike to avoid the confusion",
    )


def _encryption(attributes: Mapping[str, str]) -> Finding | None:
    key = attributes.get("KmsMasterKeyId")
    if key:
        return Finding(
            Level.NOTE,
            "queue",
            f"encrypted with KMS key {key}: the worker's role needs kms:Decrypt and kms:GenerateDataKey on it, and "
            "the key policy must allow the role (deploy/iam/kms-policy.json)",
        )
    if attributes.get("SqsManagedSseEnabled", "false").lower() == "true":
        return Finding(Level.OK, "queue", "encrypted by SQS (SSE-SQS): no key permissions needed")
    return None
