"""The approval gate run as the worker runs it: through the worker's own dispatcher, in memory, with the testing
kit's ``callback_harness`` fixture (a pytest plugin installed with sagemaker-callback-worker). Waits of hours take
milliseconds: the harness moves a virtual clock to each continuation's due time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from callback_worker import CallbackContext, Retry
from callback_worker.testing.harness import CallbackHarness

from callback_worker_example.approval import ApprovalGate

Harnesses = Callable[..., CallbackHarness]
Contexts = Callable[..., CallbackContext]


def test_approved_on_the_second_look_answers_success(callback_harness: Harnesses, tmp_path: Path) -> None:
    decision = tmp_path / "decision.json"

    class DecidedOnSecondLook(ApprovalGate):
        def __call__(self, context: CallbackContext) -> dict[str, str | int] | Retry:
            if context.state is not None:  # someone decided while the step waited
                decision.write_text(json.dumps({"decision": "approve", "by": "alice"}), encoding="utf-8")
            return super().__call__(context)

    result = callback_harness(DecidedOnSecondLook(), name="approval").run_sync(
        {"decisionFile": str(decision), "pollSeconds": 3600}
    )
    assert result.status == "Succeeded"
    assert result.outputs == {"approvedBy": "alice", "checks": "2"}  # SageMaker gets text
    assert [(c.kind, c.delay, c.state) for c in result.continuations] == [("retry", 3600.0, {"checks": 1})]
    assert result.elapsed == 3600.0


def test_no_decision_within_max_checks_fails_the_step(callback_harness: Harnesses, tmp_path: Path) -> None:
    result = callback_harness(ApprovalGate(), name="approval").run_sync(
        {"decisionFile": str(tmp_path / "never.json"), "pollSeconds": 60, "maxChecks": 3}
    )
    assert result.status == "Failed"
    assert result.failure_reason == f"no decision in {tmp_path / 'never.json'} after 3 checks"
    assert len(result.calls) == 3


def test_a_rejection_fails_the_step_with_the_reviewers_comment(callback_harness: Harnesses, tmp_path: Path) -> None:
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps({"decision": "reject", "by": "bob", "comment": "recall dropped"}), encoding="utf-8")
    result = callback_harness(ApprovalGate(), name="approval").run_sync({"decisionFile": str(decision)})
    assert (result.status, result.failure_reason) == ("Failed", "rejected by bob: recall dropped")


def test_the_context_factory_builds_the_context_the_gate_reads(callback_context: Contexts, tmp_path: Path) -> None:
    context = callback_context({"decisionFile": str(tmp_path / "d.json"), "pollSeconds": 5}, state={"checks": 4})
    answer = ApprovalGate()(context)
    assert isinstance(answer, Retry)
    assert (answer.delay, answer.state) == (5.0, {"checks": 5})
