"""A URL path read as its decoded segments, or refused when servers and proxies could read it differently.

A prefix check on the path *string* is only as good as the agreement between this worker, every proxy on the way
and the server on where a segment ends and what it means: ``/hooks/..;/admin`` is ``/hooks/`` to a string compare
and ``/admin`` to a servlet container (``;`` starts path parameters), ``/hooks/..%2Fadmin`` one segment here and two
behind a proxy that decodes ``%2F``. So a path is refused outright when any of its segments

- holds an encoded ``.``, ``/``, ``\\``, ``;`` or ``%`` (``%2E``, ``%2F``, ``%5C``, ``%3B``, ``%25``, either case),
- is ``.`` or ``..``, or once decoded is made only of dots and spaces (``..%20``, ``...``, ``. .``: Windows and IIS
  trim trailing dots and spaces from a segment, and read those as ``..``),
- holds, once decoded, ``;``, ``\\``, ``%`` (a second round of decoding would change it), or a control character,
- has percent-encoded bytes that are not UTF-8 (overlong forms of ``.`` and ``/`` among them), or characters that
  Unicode compatibility normalisation (NFKC, which some servers apply) changes, such as a full-width full stop;

and otherwise compared on its decoded segments, which then mean the same to every reader.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

_ENCODED = re.compile(r"%(2e|2f|5c|3b|25)", re.IGNORECASE)
_ENCODED_NAMES = {"2e": "'.'", "2f": "'/'", "5c": "'\\'", "3b": "';'", "25": "'%'"}
_DECODED = re.compile(r"[;\\%\x00-\x1f\x7f]")
_DOT_SEGMENTS = frozenset({".", ".."})
#: Characters of a refused segment quoted in the reason.
_SHOWN = 40


class AmbiguousPath(ValueError):
    """A path some server or proxy could read otherwise than its decoded segments say."""


def decoded_path(raw_path: str) -> str:
    """``raw_path`` (percent-encoded, as in a URL) decoded segment by segment, or :class:`AmbiguousPath`."""
    return "/".join(_segment(raw) for raw in raw_path.split("/"))


def _segment(raw: str) -> str:
    shown = _shown(raw)
    encoded = _ENCODED.search(raw)
    if encoded is not None:
        raise AmbiguousPath(f"an encoded {_ENCODED_NAMES[encoded.group(1).lower()]} in the segment {shown}")
    if raw in _DOT_SEGMENTS:  # only %2E decodes to '.', refused above: a dot segment is one as written
        raise AmbiguousPath(f"a {raw!r} segment")
    try:
        text = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise AmbiguousPath(f"percent-encoded bytes that are not UTF-8 in the segment {shown}") from None
    if text and not text.strip(". "):
        raise AmbiguousPath(f"a segment of only dots and spaces {shown}")
    found = _DECODED.search(text)
    if found is not None:
        raise AmbiguousPath(f"{found.group()!r} in the segment {shown}")
    if unicodedata.normalize("NFKC", text) != text:
        raise AmbiguousPath(f"characters that Unicode normalisation changes in the segment {shown}")
    return text


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= _SHOWN else raw[: _SHOWN - 3] + "...")
