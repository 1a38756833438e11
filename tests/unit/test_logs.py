"""worker/logs.py: token redaction in rendered output, JSON/console set-up, and module-level loggers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any, Literal

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.contextvars import bound_contextvars

from callback_worker.worker.logs import (
    MAX_VALUE_CHARS,
    TOKEN_SHOWN,
    RedactTokenFilter,
    cap,
    configure_logging,
    current_token,
    get_logger,
    mask_token_like,
    redact_token,
    scrub,
)

TOKEN = "26vcYbeWsZ"
Format = Literal["json", "console"]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave structlog, the root logger and ``current_token`` as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    reset = current_token.set(None)
    yield
    current_token.reset(reset)
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()
    for handler in {*root.handlers, *handlers}:  # pytest's own handlers were given the filter too
        for item in [item for item in handler.filters if isinstance(item, RedactTokenFilter)]:
            handler.removeFilter(item)
    root.handlers[:] = handlers
    root.setLevel(level)


def configured(log_format: Format = "json", level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(log_format, level, stream=stream)
    return stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def reject(token: str) -> None:
    raise RuntimeError(f"SageMaker rejected {token}")


# --- redact_token -----------------------------------------------------------------------------------------------


def test_redact_token() -> None:
    assert redact_token(TOKEN) == "26v*******"
    assert len(redact_token(TOKEN)) == len(TOKEN)


@pytest.mark.parametrize(("token", "shown"), [("", ""), ("ab", "ab"), ("abc", "abc"), ("abcd", "abc*")])
def test_redact_short_strings(token: str, shown: str) -> None:
    assert redact_token(token) == shown


@given(st.text(alphabet="abcdefXYZ0123456789", min_size=TOKEN_SHOWN + 1, max_size=128))
def test_redacted_never_contains_the_token(token: str) -> None:
    redacted = redact_token(token)
    assert token not in redacted
    assert redacted.startswith(token[:TOKEN_SHOWN])


# --- rendered output --------------------------------------------------------------------------------------------


def test_json_lines_carry_level_logger_time_and_context() -> None:
    stream = configured("json")
    with bound_contextvars(message_id="m-1"):
        get_logger("tests.logs").info("hello", n=1)
    (line,) = json_lines(stream)
    assert line["event"] == "hello"
    assert line["level"] == "info"
    assert line["component"] == "tests.logs"
    assert line["message_id"] == "m-1"
    assert line["n"] == 1
    assert line["timestamp"].endswith("Z")


def test_level_filters() -> None:
    stream = configured("json", "WARNING")
    log = get_logger("tests.logs")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in json_lines(stream)] == ["shown"]


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_token_field_is_redacted_even_without_current_token(log_format: Format) -> None:
    stream = configured(log_format)
    get_logger("tests.logs").info("answered", token=TOKEN)
    output = stream.getvalue()
    assert TOKEN not in output
    assert redact_token(TOKEN) in output


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_current_token_is_redacted_everywhere(log_format: Format) -> None:
    stream = configured(log_format)
    current_token.set(TOKEN)
    log = get_logger("tests.logs")
    log.info(f"callback {TOKEN} answered", detail=f"token={TOKEN};", nested={"deep": [TOKEN]})
    try:
        reject(TOKEN)
    except RuntimeError:
        log.exception("report failed")
    output = stream.getvalue()
    assert TOKEN not in output
    assert f"callback {redact_token(TOKEN)} answered" in output
    assert f"rejected {redact_token(TOKEN)}" in output  # the traceback's message is still there, masked


def test_json_redaction_keeps_lines_parseable() -> None:
    stream = configured("json")
    current_token.set(TOKEN)
    get_logger("tests.logs").info("x", token=TOKEN, other=TOKEN, nested={"a": TOKEN})
    (line,) = json_lines(stream)
    assert line["token"] == line["other"] == line["nested"]["a"] == redact_token(TOKEN)


def test_other_tokens_are_not_touched() -> None:
    stream = configured("json")
    current_token.set(TOKEN)
    get_logger("tests.logs").info("x", unrelated="ABCDEFGHIJ")
    assert json_lines(stream)[0]["unrelated"] == "ABCDEFGHIJ"


def test_logger_created_before_configuration_follows_it() -> None:
    # Modules create their logger at import time, before the CLI configures logging.
    early = get_logger("tests.early")
    stream = configured("json")
    current_token.set(TOKEN)
    early.info(f"about {TOKEN}")
    (line,) = json_lines(stream)
    assert line["component"] == "tests.early"
    assert TOKEN not in line["event"]


def test_bound_logger_keeps_its_name() -> None:
    stream = configured("json")
    get_logger("tests.bound").bind(step="s").info("x")
    (line,) = json_lines(stream)
    assert (line["component"], line["step"]) == ("tests.bound", "s")


def test_capture_logs_sees_module_level_loggers() -> None:
    early = get_logger("tests.captured")
    with structlog.testing.capture_logs() as captured:
        early.warning("seen", n=2)
    assert captured == [{"component": "tests.captured", "n": 2, "event": "seen", "log_level": "warning"}]


@given(
    st.text(alphabet="abcdefXYZ0123456789", min_size=10, max_size=10),
    st.text(max_size=30),
    st.text(max_size=30),
    st.sampled_from(["json", "console"]),
)
def test_token_never_appears_whole(token: str, before: str, after: str, log_format: Format) -> None:
    stream = io.StringIO()
    configure_logging(log_format, "INFO", stream=stream)
    reset = current_token.set(token)
    try:
        get_logger("tests.logs").info(before + token + after, value=after + token, token=token)
    finally:
        current_token.reset(reset)
    assert token not in stream.getvalue()


def test_token_like_runs_in_free_text_are_masked() -> None:
    preview = '{"token": "AbCdEfGh12", "pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p'
    masked = mask_token_like(preview)
    assert "AbCdEfGh12" not in masked
    assert '"AbC*******"' in masked
    assert "123456789012" in masked  # twelve digits are not a token
    assert mask_token_like("short 12345 and longer abcdefghijk") == "short 12345 and longer abcdefghijk"


# --- scrub, cap, and the standard library's records --------------------------------------------------------------


def test_scrub_masks_the_given_token_and_token_shaped_runs() -> None:
    assert scrub(f"{TOKEN} and ABCDEFGHIJ", TOKEN) == f"{redact_token(TOKEN)} and ABC*******"
    assert scrub("short 12345", None) == "short 12345"


def test_cap_keeps_short_text_and_marks_the_cut() -> None:
    assert cap("x" * MAX_VALUE_CHARS) == "x" * MAX_VALUE_CHARS
    assert cap("x" * (MAX_VALUE_CHARS + 7)) == "x" * MAX_VALUE_CHARS + "...[7 more characters cut]"


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("plugin", logging.WARNING, __file__, 1, message, args, None)


def test_the_filter_masks_formatted_records_and_keeps_others_as_they_are() -> None:
    masked = record("token %s", TOKEN)
    assert RedactTokenFilter().filter(masked) is True
    assert masked.getMessage() == f"token {redact_token(TOKEN)}"
    plain = record("nothing to hide")
    RedactTokenFilter().filter(plain)
    assert (plain.msg, plain.args) == ("nothing to hide", ())


def test_the_filter_survives_arguments_that_do_not_fit_the_format() -> None:
    broken = record("%d items for %s", "many", TOKEN)
    RedactTokenFilter().filter(broken)
    assert TOKEN not in broken.getMessage()
    assert "%d items" in broken.getMessage()
