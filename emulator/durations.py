"""``ExpireAfter`` durations of ``CacheConfig``.

An ISO 8601 duration (``PT1H``, ``P30D``, ``P1Y2M``) or the developer guide's short forms (``30d``, ``T16m``,
``30dT5h``, ``5y``); a year counts 365 days, a month 30.
"""

from __future__ import annotations

import re

from callback_worker.emulator.errors import DefinitionError

_DURATION = re.compile(
    r"P?(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?",
    re.IGNORECASE,
)
_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "mi": 60, "s": 1}


def parse_duration(text: str, where: str) -> float:
    """Seconds of an ``ExpireAfter`` duration; :class:`DefinitionError` for text that is not one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise DefinitionError(f"{where}: ExpireAfter {text!r} is not an ISO 8601 duration such as 'PT1H' or '30d'")
    return float(sum(int(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value))
