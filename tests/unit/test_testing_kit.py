"""The testing kit for handler authors (callback_worker.testing): the context factory, and the harness that runs a
handler through the worker's real dispatcher on the in-memory queue and SageMaker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callback_worker import CallbackContext, Fail, Retry
from callback_worker.testing.context import make_context
from callback_worker.testing.harness import CallbackHarness, Continuation, VirtualClock
from callback_worker.testing.sagemaker import MemorySageMaker
from callback_worker.worker.dispatch import STOPPING_REASON
from callback_worker.worker.memory import MemoryQueue


class Polls:
    """Asks to be called again an hour later until its third call, then answers; records its stop hook."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock
        self.seen_at: list[float] = []

    def __call__(self, context: CallbackContext) -> dict[str, Any] | Retry:
        if self.clock is not None:
            self.seen_at.append(self.clock())
        state = context.state if isinstance(context.state, dict) else {}
        checks = int(state.get("checks", 0)) + 1  # type: ignore[arg-type]
        if checks < 3:
            return Retry(delay=3600, state={"checks": checks})
        return {"checks": checks, "done": True, "ratio": 0.5}

    def on_stop(self, context: CallbackContext) -> None:
        return None


def test_the_context_factory_fills_every_field_and_keeps_the_arn_consistent() -> None:
    context = make_context({"dataset": "s3://b/k"}, state={"job": "j-1"}, attempt=2)
    assert context.arguments == {"dataset": "s3://b/k"}
    assert (context.state, context.attempt, context.continuations) == ({"job": "j-1"}, 2, 0)
    assert context.pipeline_execution_arn.endswith(
        f":pipeline/{context.pipeline_name}/execution/{context.execution_id}"
    )
    named = make_context(pipeline_execution_arn="arn:aws:sagemaker:eu-west-1:111122223333:pipeline/train/execution/x1")
    assert (named.pipeline_name, named.execution_id) == ("train", "x1")
    assert make_context(pipeline_name="release").pipeline_execution_arn.split("/")[1] == "release"


def test_a_success_is_what_sagemaker_saw_as_text() -> None:
    def answers(context: CallbackContext) -> dict[str, str | int | float | bool]:
        return {"n": 3, "ok": True, "x": 0.5, "s": "a"}

    result = CallbackHarness(answers).run_sync({"k": "v"})
    assert (result.status, result.failure_reason) == ("Succeeded", None)
    assert result.outputs == {"n": "3", "ok": "true", "x": "0.5", "s": "a"}
    assert [call.arguments for call in result.calls] == [{"k": "v"}]
    assert result.continuations == []


def test_retries_are_continuations_with_their_delay_and_state_fast_forwarded_on_the_virtual_clock() -> None:
    clock = VirtualClock()
    handler = Polls(clock)
    result = CallbackHarness(handler, clock=clock).run_sync()
    assert result.continuations == [
        Continuation("retry", 3600.0, {"checks": 1}, 1),
        Continuation("retry", 3600.0, {"checks": 2}, 1),
    ]
    assert [call.state for call in result.calls] == [None, {"checks": 1}, {"checks": 2}]
    assert [call.continuations for call in result.calls] == [0, 1, 2]
    assert [at - handler.seen_at[0] for at in handler.seen_at] == [0.0, 3600.0, 7200.0]  # over the 900 s hops
    assert result.elapsed == 7200.0
    assert result.outputs == {"checks": "3", "done": "true", "ratio": "0.5"}


def test_a_crash_is_retried_with_backoff_then_failed_naming_it() -> None:
    def crashes(context: CallbackContext) -> dict[str, str]:
        raise RuntimeError(f"boom {context.attempt}")

    result = CallbackHarness(crashes, name="risky", max_attempts=3, retry_backoff=10).run_sync()
    assert result.status == "Failed"
    assert result.failure_reason == "handler 'risky' failed after 3 attempt(s): RuntimeError: boom 3"
    assert result.continuations == [Continuation("crash", 10.0, None, 2), Continuation("crash", 20.0, None, 3)]
    assert [call.attempt for call in result.calls] == [1, 2, 3]


def test_fail_is_answered_at_once() -> None:
    async def refuses(context: CallbackContext) -> dict[str, str]:
        raise Fail("the data is bad")

    result = CallbackHarness(refuses).run_sync()
    assert (result.status, result.failure_reason, len(result.calls)) == ("Failed", "the data is bad", 1)


def test_a_stopped_pipeline_runs_the_stop_hook_and_the_step_is_stopped() -> None:
    result = CallbackHarness(Polls()).run_sync(stop_after_calls=1)
    assert (result.status, result.failure_reason) == ("Stopped", STOPPING_REASON)
    assert len(result.calls) == 1
    # The Stopping message's hook gets no state; the waiting continuation then wakes to a stopped step and runs the
    # hook with its own state (the worker's documented behaviour: a hook may run more than once for one stop).
    assert [call.state for call in result.stop_calls] == [None, {"checks": 1}]


def test_a_handler_that_never_answers_stops_after_max_calls_unanswered() -> None:
    result = CallbackHarness(lambda context: Retry(delay=60)).run_sync(max_calls=5)
    assert (result.status, len(result.calls), len(result.continuations)) == ("Executing", 5, 5)


def test_runs_inside_a_running_event_loop_with_await() -> None:
    async def main() -> str:
        return (await CallbackHarness(lambda context: {"a": 1}).run()).status

    assert asyncio.run(main()) == "Succeeded"


async def test_the_memory_sagemaker_applies_the_first_answer_and_refuses_a_different_one() -> None:
    sagemaker = MemorySageMaker(MemoryQueue())
    step = sagemaker.start({"a": 1})
    first = {"CallbackToken": step.token, "ClientRequestToken": "c1", "OutputParameters": []}
    await sagemaker.send_pipeline_execution_step_success(**first)
    await sagemaker.send_pipeline_execution_step_success(**first)  # a replay
    with pytest.raises(Exception, match="ConflictException"):
        await sagemaker.send_pipeline_execution_step_failure(
            CallbackToken=step.token, ClientRequestToken="c2", FailureReason="late"
        )
    assert (step.status, len(step.answers), len(step.conflicts)) == ("Succeeded", 2, 1)
    with pytest.raises(Exception, match="ResourceNotFound"):
        await sagemaker.list_pipeline_execution_steps(PipelineExecutionArn="arn:nope")
