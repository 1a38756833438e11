"""The JSON paths of ``Std:JsonGet``: ``a.b[0].c``, optionally starting with ``$.``, with ``['key']`` for odd keys.

This is the subset that SageMaker's ``JsonGet`` documents and the SDK's examples use (member names, array
indexes); filters and wildcards are refused when the definition is checked.
"""

from __future__ import annotations

import re

from callback_worker.emulator.errors import DefinitionError
from callback_worker.emulator.values import JSONValue

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def _parse(path: str) -> list[str | int]:
    text = path[2:] if path.startswith("$.") else path.removeprefix("$")
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or (position == 0 and text.startswith(".")):
            raise DefinitionError(f"Std:JsonGet: the path {path!r} is not a supported JSON path (a.b[0].c)")
        name, index, quoted, double = match.groups()
        steps.append(int(index) if index is not None else next(v for v in (name, quoted, double) if v is not None))
        position = match.end()
    if not steps:
        raise DefinitionError(f"Std:JsonGet: the path {path!r} is empty")
    return steps


def select(document: JSONValue, path: str, *, check_only: bool = False) -> JSONValue:
    """The value at ``path`` in ``document``.

    Raises :class:`DefinitionError` for a path that is not supported (``check_only`` stops there), and
    :class:`KeyError`/:class:`IndexError`/:class:`TypeError` when the document has no such value.
    """
    steps = _parse(path)
    if check_only:
        return None
    node = document
    for step in steps:
        if isinstance(step, int) and isinstance(node, list):
            if step >= len(node):
                raise IndexError(f"index {step} is past the end of an array of {len(node)}")
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict):
            if step not in node:
                raise KeyError(f"no member {step!r}")
            node = node[step]
        else:
            raise TypeError(f"cannot take {step!r} of {type(node).__name__}")
    return node
