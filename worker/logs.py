"""structlog set-up: JSON for machines, console for people, per-message context, and token redaction."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

#: Characters of a callback token shown in logs; the rest is masked.
TOKEN_SHOWN = 3


#: A run of exactly ten letters and digits: what a callback token looks like in free text.
_TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{10}(?![A-Za-z0-9])")


def mask_token_like(text: str) -> str:
    """``text`` with every token-shaped run masked as :func:`redact_token` would, for text from outside (a broken
    message body may carry a real token where no parser found it)."""
    return _TOKEN_LIKE.sub(lambda match: redact_token(match[0]), text)


def redact_token(token: str) -> str:
    """A callback token as logs may show it: the first few characters, then a mask of the same length."""
    return token[:TOKEN_SHOWN] + "*" * max(0, len(token) - TOKEN_SHOWN)


#: The token of the message being handled in this context; any log line mentioning it shows it redacted.
current_token: ContextVar[str | None] = ContextVar("callback_worker_current_token", default=None)


def _redact_tokens(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    token = event_dict.get("token")
    if isinstance(token, str):
        event_dict["token"] = redact_token(token)
    secret = current_token.get()
    if secret:
        masked = redact_token(secret)
        for key, value in event_dict.items():
            if isinstance(value, str) and secret in value:
                event_dict[key] = value.replace(secret, masked)
    return event_dict


def _redact_rendered(_: WrappedLogger, __: str, rendered: Any) -> Any:
    # Runs after the renderer (``rendered`` is its text): also masks the token in nested values and in the
    # tracebacks the console renderer formats itself.
    secret = current_token.get()
    if secret and isinstance(rendered, str):
        return rendered.replace(secret, redact_token(secret))
    return rendered


def configure_logging(
    log_format: Literal["json", "console"] = "json", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog (and the standard library's root logger, for botocore and aiohttp) once at start-up."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if log_format == "json" else structlog.dev.set_exc_info,
            _redact_tokens,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(logging.getLevelName(level), logging.WARNING), stream=stream or sys.stderr)


def get_logger(name: str) -> Any:
    """A structlog logger carrying ``component=name``.

    The proxy binds lazily, on first use, so a module-level logger honours the configuration in force when it
    logs rather than the defaults of import time.
    """
    return structlog.get_logger(component=name)
