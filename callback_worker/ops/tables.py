"""Rendering for people (aligned tables, labelled fields) and for scripts (JSON), and writing it out.

Text from the service or from handlers (outputs, failure reasons) is shown with control characters escaped, so a
value cannot move the cursor or recolour an operator's terminal; long cells are shortened in tables, never in JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

#: How an absent value is shown.
EMPTY = "-"
#: Longest cell shown in a table (except in the last column, which may run on).
MAX_CELL = 60
_MORE = "..."
_GAP = "  "


def clean(text: str) -> str:
    """``text`` on one line, with every non-printable character escaped (``\\n``, ``\\x1b``)."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def shorten(text: str, width: int = MAX_CELL) -> str:
    """``text`` cut to ``width`` characters, ending in ``...`` when cut."""
    return text if len(text) <= width else text[: width - len(_MORE)] + _MORE


def cell(value: object) -> str:
    """A table cell for ``value``: timestamps in UTC, absent or empty values as ``-``, text cleaned."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, datetime):
        return timestamp(value)
    return clean(str(value))


def timestamp(value: datetime) -> str:
    """``2026-05-01T12:00:03Z``: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned table: upper-case headers, columns two spaces apart, no trailing blanks."""
    cells = [[cell(value) for value in row] for row in rows]
    last = len(headers) - 1
    cells = [[text if index == last else shorten(text) for index, text in enumerate(row)] for row in cells]
    widths = [max([len(header), *(len(row[index]) for row in cells)]) for index, header in enumerate(headers)]
    lines = [[header.upper() for header in headers], *cells]
    return "\n".join(_GAP.join(map(str.ljust, line, widths)).rstrip() for line in lines)


def fields(items: Sequence[tuple[str, object]]) -> str:
    """Labelled lines (``label  value``), the values aligned; an absent value shows as ``-``."""
    shown = [(label, cell(value)) for label, value in items]
    width = max((len(label) for label, _ in shown), default=0)
    return "\n".join(f"{label.ljust(width)}{_GAP}{value}" for label, value in shown)


def to_json(document: object) -> str:
    """``document`` as indented JSON; timestamps as ISO 8601 in UTC."""
    return json.dumps(document, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def emit(text: str) -> None:
    """Write ``text`` and a newline to stdout."""
    sys.stdout.write(text + "\n")


def complain(message: str) -> None:
    """Write one ``callback-worker: message`` line to stderr."""
    sys.stderr.write(f"callback-worker: {clean(message)}\n")
