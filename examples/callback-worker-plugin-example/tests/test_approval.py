"""The approval gate, called as the worker calls it: with a CallbackContext. No queue, no SageMaker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from callback_worker import CallbackContext, Fail, JSONValue, Retry

from callback_worker_example.approval import DEFAULT_POLL_SECONDS, ApprovalGate

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/release/execution/abcdef123456"


def context(tmp_path: Path, state: JSONValue = None, **arguments: JSONValue) -> CallbackContext:
    return CallbackContext(
        token="AbCdE12345",
        pipeline_execution_arn=ARN,
        pipeline_name="release",
        execution_id="abcdef123456",
        arguments={"decisionFile": str(tmp_path / "decision.json"), **arguments},
        handler_name="approval",
        message_id="message-1",
        state=state,
    )


def decide(tmp_path: Path, **decision: Any) -> None:
    (tmp_path / "decision.json").write_text(json.dumps(decision), encoding="utf-8")


def test_no_decision_yet_asks_to_be_called_again_counting_checks(tmp_path: Path) -> None:
    first = ApprovalGate()(context(tmp_path))
    assert isinstance(first, Retry)
    assert first.delay == DEFAULT_POLL_SECONDS
    assert first.state == {"checks": 1}

    second = ApprovalGate()(context(tmp_path, state=first.state, pollSeconds=5))
    assert isinstance(second, Retry)
    assert (second.delay, second.state) == (5.0, {"checks": 2})


def test_a_half_written_file_is_no_decision_yet(tmp_path: Path) -> None:
    (tmp_path / "decision.json").write_text('{"decision": "appr', encoding="utf-8")
    assert isinstance(ApprovalGate()(context(tmp_path)), Retry)


def test_approval_succeeds_with_who_and_how_many_checks(tmp_path: Path) -> None:
    decide(tmp_path, decision="approve", by="alice")
    assert ApprovalGate()(context(tmp_path, state={"checks": 2})) == {"approvedBy": "alice", "checks": 3}


def test_rejection_fails_the_step_with_the_comment(tmp_path: Path) -> None:
    decide(tmp_path, decision="reject", by="bob", comment="recall dropped")
    with pytest.raises(Fail, match=r"^rejected by bob: recall dropped$"):
        ApprovalGate()(context(tmp_path))


def test_gives_up_after_max_checks(tmp_path: Path) -> None:
    with pytest.raises(Fail, match=r"no decision in .* after 3 checks"):
        ApprovalGate()(context(tmp_path, state={"checks": 2}, maxChecks=3))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"decisionFile": None}, "argument 'decisionFile' is required"),
        ({"pollSeconds": 0}, "argument 'pollSeconds' must be a positive number"),
        ({"maxChecks": "ten"}, "argument 'maxChecks' must be a positive number"),
    ],
)
def test_bad_arguments_fail_at_once(tmp_path: Path, arguments: dict[str, JSONValue], message: str) -> None:
    with pytest.raises(Fail, match=message):
        ApprovalGate()(context(tmp_path, **arguments))


@pytest.mark.parametrize("content", ['["approve"]', '{"decision": "maybe"}'])
def test_a_decision_that_is_not_one_fails(tmp_path: Path, content: str) -> None:
    (tmp_path / "decision.json").write_text(content, encoding="utf-8")
    with pytest.raises(Fail):
        ApprovalGate()(context(tmp_path))
