"""Durations as operators type them (``90m``, ``2h``, ``3d``, ``1h30m``) and ages as the commands show them.

A duration is one or more ``<whole number><unit>`` parts, units ``s``, ``m``, ``h``, ``d`` and ``w``, each unit at
most once and largest first; it must be longer than zero. Anything else is a
:class:`~callback_worker.ops.errors.UsageError` that says what a duration looks like.
"""

from __future__ import annotations

import re
from datetime import timedelta

from callback_worker.ops.errors import UsageError

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile("".join(rf"(?:(?P<{unit}>\d+){unit})?" for unit in UNITS))
_EXAMPLES = "a number and a unit (s, m, h, d, w), such as 90m, 2h, 3d or 1h30m"
#: Longer than any pipeline waits, and well inside what timedelta can hold.
MAX_DURATION = timedelta(days=3_650)


def parse_duration(text: str, option: str = "--older-than") -> timedelta:
    """``text`` as a duration; a UsageError naming ``option`` when it is not one."""
    cleaned = text.strip().lower()
    match = _DURATION.fullmatch(cleaned) if cleaned else None
    if match is None or not any(match.groupdict().values()):
        raise UsageError(f"{option} {text!r} is not a duration: expected {_EXAMPLES}")
    seconds = sum(int(value) * UNITS[unit] for unit, value in match.groupdict().items() if value)
    if seconds <= 0:
        raise UsageError(f"{option} {text!r} is not longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise UsageError(f"{option} {text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def age_text(age: timedelta) -> str:
    """An age at a glance, in its two largest units: ``45s``, ``12m``, ``3h05m``, ``2d04h``; negative ages are 0s."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, UNITS["d"])
    hours, rest = divmod(rest, UNITS["h"])
    minutes, seconds = divmod(rest, UNITS["m"])
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
