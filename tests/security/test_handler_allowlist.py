"""Finding 6 (handler allowlist): ``CALLBACK_WORKER_HANDLERS`` limits the handlers a message may choose.

Before: every loaded handler could be chosen by whoever can send to the queue, through the routing argument; there
was no setting to narrow that (the name was ignored), so a message naming e.g. ``command`` ran it.
"""

from __future__ import annotations

from typing import Any

import pytest

from callback_worker import cli
from callback_worker.config.errors import SettingsError
from callback_worker.config.settings import Settings, env_name, load_settings
from callback_worker.worker.errors import ConfigurationError
from callback_worker.worker.handler import CallbackContext, Handler
from callback_worker.worker.router import Router, restrict
from tests.integration.conftest import QueueFactory
from tests.worker_harness import create_pipeline, one_step_definition, running_worker, step_of, wait_for_status
from tests.worker_harness import worker_settings as settings_for

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks"


def safe(context: CallbackContext) -> dict[str, str]:
    return {"ran": "safe"}


def danger(context: CallbackContext) -> dict[str, str]:
    raise AssertionError("a handler outside the allowlist ran")


HANDLERS: dict[str, Handler] = {"safe": safe, "danger": danger}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.setenv("CALLBACK_WORKER_QUEUE_URL", QUEUE_URL)
    return monkeypatch


def test_a_message_naming_a_handler_outside_the_allowlist_gets_none() -> None:
    router = Router(restrict(HANDLERS, ["safe"]), default=None, argument="handler")
    assert router.route({"handler": "danger"}) == ("danger", None)
    assert router.route({"handler": "safe"}) == ("safe", safe)
    reason = router.unknown_reason("danger")
    assert "not allowed" in reason
    assert "CALLBACK_WORKER_HANDLERS" in reason
    assert "danger" not in reason.split("allowed:", 1)[1], "the refused handler is not offered"


def test_the_router_takes_an_allowlist_directly_too() -> None:
    router = Router(HANDLERS, default="danger", argument="handler", allowed={"safe"})
    assert router.route({}) == ("danger", None)
    assert "not allowed" in router.unknown_reason("danger")


def test_without_an_allowlist_every_handler_may_run() -> None:
    router = Router(restrict(HANDLERS, None), default=None, argument="handler")
    assert router.route({"handler": "danger"}) == ("danger", danger)
    assert router.unknown_reason("nosuch").startswith("no handler named 'nosuch'")


def test_the_setting_is_comma_separated_and_unset_by_default(env: pytest.MonkeyPatch) -> None:
    assert load_settings().handlers is None
    env.setenv("CALLBACK_WORKER_HANDLERS", " safe, echo,safe")
    assert load_settings().handlers == ("echo", "safe")


@pytest.mark.parametrize(
    ("setting", "value"), [("CALLBACK_WORKER_HANDLER", "danger"), ("CALLBACK_WORKER_ROUTES", '{"p": "danger"}')]
)
def test_a_setting_naming_a_handler_outside_the_allowlist_stops_start_up(
    env: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    env.setenv("CALLBACK_WORKER_HANDLERS", "safe")
    env.setenv(setting, value)
    with pytest.raises(SettingsError, match=setting) as caught:
        load_settings()
    assert "'danger'" in str(caught.value)


@pytest.mark.parametrize("text", [",", "safe,,echo", " "])
def test_an_empty_name_in_the_allowlist_stops_start_up(env: pytest.MonkeyPatch, text: str) -> None:
    env.setenv("CALLBACK_WORKER_HANDLERS", text)
    with pytest.raises(SettingsError, match="CALLBACK_WORKER_HANDLERS"):
        load_settings()


def test_an_allowlisted_name_that_is_not_installed_stops_start_up(env: pytest.MonkeyPatch) -> None:
    env.setenv("CALLBACK_WORKER_HANDLERS", "echo,nosuch")
    with pytest.raises(ConfigurationError, match=r"CALLBACK_WORKER_HANDLERS: no handler named 'nosuch'"):
        cli._check_allowlist(load_settings())
    env.setenv("CALLBACK_WORKER_HANDLERS", "echo")
    cli._check_allowlist(load_settings())


async def test_the_worker_answers_a_refused_handler_with_a_failure(sagemaker: Any, make_queue: QueueFactory) -> None:
    calls: list[str] = []

    def recorded(context: CallbackContext) -> dict[str, str]:
        calls.append(context.handler_name)
        return {}

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url, {"handler": "danger"}))
    settings = settings_for(queue_url, handler=None, handlers="safe")
    async with running_worker(settings, {"safe": recorded, "danger": recorded}):
        arn = str((await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"])
        assert await wait_for_status(sagemaker, arn, within=30) == "Failed"
    assert calls == [], "nothing of the refused handler ran"
    assert "handler 'danger' is not allowed" in (await step_of(sagemaker, arn))["FailureReason"]
