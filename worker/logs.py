"""structlog set-up: JSON for machines, console for people, per-message context, token redaction, and a cap on the
length of every value (a message may carry megabytes of text, and each log line would copy it)."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

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


def scrub(text: str, token: str | None) -> str:
    """``text`` fit to leave the worker (a failure reason sent to SageMaker, a log line of a library): ``token`` and
    every other run that looks like a token masked as :func:`redact_token` masks a token.

    Free text has ten-letter words (``connection``, ``ValueError``), so here a run counts as a token only if it has
    a digit or three capitals — as all but about 1 % of random tokens have; the token being handled is masked
    whatever it looks like."""
    if token:
        text = text.replace(token, redact_token(token))
    return _TOKEN_LIKE.sub(_mask_if_likely, text)


def _mask_if_likely(match: re.Match[str]) -> str:
    run = match[0]
    likely = any(char.isdigit() for char in run) or sum(char.isupper() for char in run) >= 3
    return redact_token(run) if likely else run


#: Characters a log value (the event included) may have; the rest is cut. Values often come from a message, and a
#: message may carry 1 MiB of text that every line about it would copy.
MAX_VALUE_CHARS = 1_000
#: A traceback is mostly the worker's own text and says most at its end: it keeps more, from the end.
MAX_TRACEBACK_CHARS = 20_000
#: How deep inside lists and mappings values are capped; deeper containers are logged as a capped ``repr``.
_CAP_DEPTH = 4


def cap(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text``, or its first ``limit`` characters and a marker saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters cut]"


def _cap_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} characters cut]...{text[-limit:]}"


def _capped(value: Any, secret: str | None, depth: int = 0) -> Any:
    """``value`` with its strings capped, the current token (``secret``) masked first: a cut must not leave part of
    the token where the redaction of the rendered line no longer finds it."""
    if isinstance(value, str):
        return cap(value.replace(secret, redact_token(secret)) if secret else value)
    if not isinstance(value, list | tuple | dict):
        return value
    if depth >= _CAP_DEPTH:
        return _capped(repr(value), secret)
    if isinstance(value, dict):
        return {key: _capped(item, secret, depth + 1) for key, item in value.items()}
    return [_capped(item, secret, depth + 1) for item in value]


def _cap_values(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    secret = current_token.get()
    for key, value in event_dict.items():
        if key == "exception" and isinstance(value, str):
            event_dict[key] = _cap_tail(value, MAX_TRACEBACK_CHARS)
        elif isinstance(value, str | list | tuple | dict):
            event_dict[key] = _capped(value, secret)
    return event_dict


class RedactTokenFilter(logging.Filter):
    """For the standard library's log records (botocore, aiohttp, plugins): the message, the traceback and the stack
    with the current token and every token-shaped run masked, and capped like structlog's values.

    The record is changed in place (Python 3.11 cannot hand a handler a changed copy), and only when its text
    changes. What counts as token-shaped is :func:`scrub`'s rule.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        token = current_token.get()
        message = _message_of(record)
        clean = cap(scrub(message, token))
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _cap_tail(scrub(record.exc_text, token), MAX_TRACEBACK_CHARS)
        if record.stack_info:
            record.stack_info = _cap_tail(scrub(record.stack_info, token), MAX_TRACEBACK_CHARS)
        return True


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):  # arguments that do not fit the format: show both, masked later
        return f"{record.msg!s} {record.args!r}"


def install_stdlib_redaction(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactTokenFilter` on every handler of ``logger`` (the root logger) that has none yet."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(item, RedactTokenFilter) for item in handler.filters):
            handler.addFilter(RedactTokenFilter())


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


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``trace_id`` and ``span_id`` of the current span, when tracing is on (OpenTelemetry loaded); nothing else."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict["trace_id"] = format(context.trace_id, "032x")
            event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(
    log_format: Literal["json", "console"] = "json", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog (and the standard library's root logger, for botocore, aiohttp and plugins, whose records
    pass through :class:`RedactTokenFilter`) once at start-up."""
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
            add_trace_ids,
            structlog.processors.format_exc_info if log_format == "json" else structlog.dev.set_exc_info,
            _redact_tokens,
            _cap_values,  # after the redaction: a cut must not leave part of the token where no redaction finds it
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(logging.getLevelName(level), logging.WARNING), stream=stream or sys.stderr)
    install_stdlib_redaction()


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger carrying ``component=name``, typed as what :func:`configure_logging` makes it (a filtering
    bound logger), so that every log call is type-checked.

    The proxy binds lazily, on first use, so a module-level logger honours the configuration in force when it
    logs rather than the defaults of import time.
    """
    logger: FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
