"""Finding 8 (log amplification): every value in a log line is capped, whatever a message carried.

Before: a message naming a 250 KB handler produced about 750 KB of log: the name was bound to the message's log
context (so repeated on every line about it) and quoted again in the ``reason`` of the line saying no such handler
exists. Now a processor in ``worker.logs`` cuts every string value (the event too, and strings inside lists and
mappings) to ``MAX_VALUE_CHARS`` with a marker saying how much was cut.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from structlog.contextvars import bound_contextvars

from callback_worker.worker.logs import (
    MAX_TRACEBACK_CHARS,
    MAX_VALUE_CHARS,
    cap,
    current_token,
    get_logger,
    redact_token,
)
from callback_worker.worker.router import Router
from tests.security.logcapture import daemon_logging

HUGE = "h" * 250_000
TOKEN = "26vcYbeWsZ"


def fail(error: Exception) -> None:
    raise error


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_huge_handler_name_is_not_copied_into_every_line(log_format: Any) -> None:
    router = Router({}, default=None, argument="handler")
    name, handler = router.route({"handler": HUGE})
    assert handler is None
    with daemon_logging(log_format) as stream:
        log = get_logger("tests.security.amplification")
        with bound_contextvars(handler=name, attempt=1):  # as the dispatcher binds it
            log.error("no such handler", reason=router.unknown_reason(name))
            log.info("answered", outcome="failure")
    output = stream.getvalue()
    assert len(output) < 6 * MAX_VALUE_CHARS, f"{len(output)} characters of log for two lines"
    assert "more characters cut]" in output


def test_json_lines_stay_json_and_say_what_was_cut() -> None:
    with daemon_logging() as stream:
        get_logger("tests.security.amplification").warning(
            "e" * 5_000, value=HUGE, nested={"list": [HUGE, 1], "n": 2}, short="kept"
        )
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == cap("e" * 5_000)
    assert line["value"] == "h" * MAX_VALUE_CHARS + f"...[{250_000 - MAX_VALUE_CHARS} more characters cut]"
    assert line["nested"]["list"][0] == line["value"]
    assert (line["nested"]["list"][1], line["nested"]["n"], line["short"]) == (1, 2, "kept")


def test_a_token_is_masked_before_the_cut() -> None:
    """A cut through the token must not leave its start where no redaction finds it."""
    with daemon_logging() as stream:
        current_token.set(TOKEN)
        get_logger("tests.security.amplification").info("x", value="-" * (MAX_VALUE_CHARS - 5) + TOKEN)
    output = stream.getvalue()
    assert TOKEN[:5] not in output
    assert redact_token(TOKEN)[:5] in output


def test_a_traceback_keeps_its_end() -> None:
    with daemon_logging() as stream:
        try:
            fail(ValueError("x" * (2 * MAX_TRACEBACK_CHARS) + " the end"))
        except ValueError:
            get_logger("tests.security.amplification").exception("failed")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert len(line["exception"]) < MAX_TRACEBACK_CHARS + 100
    assert line["exception"].endswith("the end")


def test_standard_library_records_are_capped_too() -> None:
    with daemon_logging() as stream:
        logging.getLogger("some_plugin").warning("value %s", HUGE)
    assert len(stream.getvalue()) < 2 * MAX_VALUE_CHARS
