"""Logging as the daemon sets it up, into a string: the root logger's own handlers set aside for the test."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import structlog

from callback_worker.worker.logs import configure_logging, current_token


@contextmanager
def daemon_logging(log_format: Literal["json", "console"] = "json") -> Iterator[io.StringIO]:
    """``configure_logging`` writing to a string, with no other root handler; everything restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    reset = current_token.set(None)
    root.handlers[:] = []
    stream = io.StringIO()
    try:
        configure_logging(log_format, "INFO", stream=stream)
        yield stream
    finally:
        current_token.reset(reset)
        structlog.configure(**saved)
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)
