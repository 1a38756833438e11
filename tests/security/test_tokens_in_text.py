"""Finding 5 (tokens in text): a callback token never shows whole in a context's ``repr``, in a standard-library log
record, in a preview of a malformed body, or in a crash reason sent to SageMaker.

Before: ``repr(CallbackContext)`` printed the token (a handler logging its context leaked it); records of the
standard library's ``logging`` (botocore, aiohttp, every plugin) passed through unredacted; ``_describe`` quoted the
first 80 characters of a bad value verbatim, token included, into the Failure reason and the log; and a handler whose
exception text held its token had the token sent to SageMaker in the crash reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from callback_worker.worker.errors import MalformedMessage
from callback_worker.worker.handler import CallbackContext
from callback_worker.worker.logs import current_token, install_stdlib_redaction, redact_token, scrub
from callback_worker.worker.message import parse_message
from tests.integration.conftest import QueueFactory
from tests.security.logcapture import daemon_logging
from tests.worker_harness import (
    create_pipeline,
    one_step_definition,
    running_worker,
    step_of,
    wait_for_status,
    worker_settings,
)

TOKEN = "Tok5Leak77"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcdef123456"


def reject(token: str) -> None:
    raise RuntimeError(f"the service rejected {token}")


def context() -> CallbackContext:
    return CallbackContext(
        token=TOKEN,
        pipeline_execution_arn=ARN,
        pipeline_name="p",
        execution_id="abcdef123456",
        arguments={},
        handler_name="h",
        message_id="m-1",
    )


def test_the_repr_of_a_context_leaves_the_token_out() -> None:
    text = repr(context())
    assert TOKEN not in text
    assert "pipeline_execution_arn=" in text, "the rest of the context still shows"
    assert context().token == TOKEN


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_plugin_logging_a_token_through_the_standard_library_shows_it_masked(log_format: Any) -> None:
    with daemon_logging(log_format) as stream:
        plugin = logging.getLogger("some_plugin.jobs")
        plugin.warning("job for token %s failed", TOKEN)
        plugin.error("started with %r", context())
        try:
            reject(TOKEN)
        except RuntimeError:
            plugin.exception("call failed")
    output = stream.getvalue()
    assert TOKEN not in output
    assert f"job for token {redact_token(TOKEN)} failed" in output
    assert f"rejected {redact_token(TOKEN)}" in output, "the traceback is there, masked"


def test_the_current_token_is_masked_in_standard_library_records() -> None:
    with daemon_logging() as stream:
        current_token.set(TOKEN)
        logging.getLogger("botocore.hooks").warning("retrying %s", {"CallbackToken": TOKEN})
    assert TOKEN not in stream.getvalue()


def test_every_root_handler_gets_the_filter_once() -> None:
    with daemon_logging() as stream:
        logging.getLogger().addHandler(logging.StreamHandler(stream))
        install_stdlib_redaction()
        install_stdlib_redaction()
        logging.getLogger("x").warning("token %s", TOKEN)
        counts = [len(handler.filters) for handler in logging.getLogger().handlers]
    assert counts == [1, 1]
    assert TOKEN not in stream.getvalue()


def test_scrub_masks_the_token_and_token_shaped_text() -> None:
    reason = scrub(f"job failed for {TOKEN}; other Abcdefgh12 id 123456789012", TOKEN)
    assert TOKEN not in reason
    assert "Abcdefgh12" not in reason
    assert redact_token(TOKEN) in reason
    assert "123456789012" in reason, "twelve digits are not a token"
    assert scrub("nothing here", None) == "nothing here"


def malformed(body: dict[str, Any]) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(json.dumps(body))
    return caught.value


def test_the_preview_of_a_bad_token_masks_token_shaped_text() -> None:
    error = malformed({"token": f" {TOKEN}", "pipelineExecutionArn": ARN})
    assert TOKEN not in error.reason
    assert redact_token(TOKEN) in error.reason


def test_the_preview_of_a_bad_arn_does_not_repeat_the_token() -> None:
    error = malformed({"token": TOKEN, "pipelineExecutionArn": f"arn:aws:sagemaker:x/{TOKEN}"})
    assert error.token == TOKEN, "still answerable"
    assert TOKEN not in error.reason, "the reason is sent to SageMaker and logged"


def test_a_token_across_the_end_of_the_preview_is_masked_too() -> None:
    error = malformed({"token": "-" * 75 + TOKEN + "-" * 10, "pipelineExecutionArn": ARN})
    assert TOKEN[:5] not in error.reason


async def test_a_crash_reason_sent_to_sagemaker_never_holds_the_token(sagemaker: Any, make_queue: QueueFactory) -> None:
    tokens: list[str] = []

    def handler(context: CallbackContext) -> dict[str, str]:
        tokens.append(context.token)
        raise RuntimeError(f"the job service refused token {context.token}")

    queue_url, _ = await make_queue()
    pipeline = await create_pipeline(sagemaker, one_step_definition(queue_url))
    async with running_worker(worker_settings(queue_url, handler="h", max_attempts=1), {"h": handler}):
        arn = str((await sagemaker.start_pipeline_execution(PipelineName=pipeline))["PipelineExecutionArn"])
        assert await wait_for_status(sagemaker, arn, within=30) == "Failed"
    reason = (await step_of(sagemaker, arn))["FailureReason"]
    assert "the job service refused token" in reason
    assert tokens
    assert tokens[0] not in reason, f"the token was sent whole: {reason!r}"
    assert redact_token(tokens[0]) in reason
