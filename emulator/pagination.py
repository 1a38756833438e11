"""``MaxResults`` / ``NextToken`` paging of the List operations.

A ``NextToken`` is opaque to clients; here it carries the sort key of the last item returned, so that a page
continues after that item even when items were added in between (a step that started between two calls
neither shifts nor repeats the ones already listed). A token from another listing, or a garbled one, is a
``ValidationException``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from callback_worker.emulator.errors import ValidationError

T = TypeVar("T")
SortKey = tuple[float | int | str, ...]

#: Page size when a request gives no MaxResults.
DEFAULT_MAX_RESULTS = 10


def _encode(scope: str, key: SortKey) -> str:
    raw = json.dumps({"scope": scope, "after": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(token: str, scope: str) -> SortKey:
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict) or document.get("scope") != scope or not isinstance(document.get("after"), list):
        raise ValidationError(f"The NextToken {token!r} is not valid for this request")
    return tuple(document["after"])


def paginate(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    scope: str,
    descending: bool,
    max_results: int | None,
    next_token: str | None,
) -> tuple[list[T], str | None]:
    """One page of ``items`` sorted by ``key``, and the token for the next page (``None`` on the last page).

    ``scope`` names the listing (operation and parent resource) so that a token cannot be replayed against
    another one.
    """
    ordered = sorted(items, key=key, reverse=descending)
    if next_token:
        after = _decode(next_token, scope)
        ordered = [item for item in ordered if (key(item) < after if descending else key(item) > after)]
    size = max_results or DEFAULT_MAX_RESULTS
    page = ordered[:size]
    if len(ordered) > size:
        return page, _encode(scope, key(page[-1]))
    return page, None
