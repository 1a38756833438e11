"""Handler discovery through the ``callback_worker.handlers`` entry-point group.

Discovery reads entry points without importing them, sorts them, then loads each inside its own ``try`` so that a
broken plugin stops start-up with its name and distribution. Two entry points with one name are fatal: silently
keeping one of them would route messages to whichever happened to be found first (``handlers`` and ``doctor`` list
both, marked).

Choosing a handler for a message is :mod:`worker.router`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from callback_worker.worker.errors import DuplicateHandlerName, PluginError
from callback_worker.worker.handler import Handler

ENTRY_POINT_GROUP = "callback_worker.handlers"


@dataclass(frozen=True, slots=True)
class HandlerSource:
    """Where a handler came from, for ``callback-worker handlers`` and for error messages."""

    name: str
    value: str
    distribution: str
    version: str

    def describe(self) -> str:
        return f"{self.value} ({self.distribution} {self.version})"


@dataclass(frozen=True, slots=True)
class LoadedHandler:
    """A handler ready to be called, with its origin."""

    handler: Handler
    source: HandlerSource


def discover(group: str = ENTRY_POINT_GROUP, allow: Iterable[str] | None = None) -> list[HandlerSource]:
    """The group's entry points, sorted by name, without importing them. Duplicate names raise PluginError."""
    found: dict[str, HandlerSource] = {}
    for source in registrations(group, allow):
        if source.name in found:
            raise _duplicate(found[source.name], source)
        found[source.name] = source
    return list(found.values())


def registrations(group: str = ENTRY_POINT_GROUP, allow: Iterable[str] | None = None) -> list[HandlerSource]:
    """Every registration of the group, sorted by name, a name claimed twice included (one distribution seen twice
    on the path is one registration); nothing is imported."""
    wanted = set(allow) if allow is not None else None
    found: list[HandlerSource] = []
    for entry_point in sorted(entry_points(group=group), key=lambda ep: (ep.name, ep.value)):
        source = _source(entry_point)
        if (wanted is None or source.name in wanted) and source not in found:
            found.append(source)
    return found


def _duplicate(source: HandlerSource, other: HandlerSource) -> DuplicateHandlerName:
    return DuplicateHandlerName(
        f"handler name {source.name!r} is registered twice: {source.describe()} and {other.describe()}; "
        "uninstall one of them (or rename its entry point)"
    )


def load_handlers(group: str = ENTRY_POINT_GROUP, allow: Iterable[str] | None = None) -> dict[str, LoadedHandler]:
    """Import and build every discovered handler. Any failure raises PluginError naming the plugin."""
    loaded: dict[str, LoadedHandler] = {}
    for source in discover(group, allow):
        loaded[source.name] = LoadedHandler(_build(source), source)
    return loaded


def load_each(
    group: str = ENTRY_POINT_GROUP, allow: Iterable[str] | None = None
) -> list[tuple[HandlerSource, LoadedHandler | PluginError]]:
    """Every registration, built, or with the error that keeps it from use: one broken plugin hides none of the
    others (``callback-worker handlers`` and ``doctor`` list them all). Both registrations of a name claimed twice are
    listed with a :class:`DuplicateHandlerName` naming the other, and neither is imported."""
    sources = registrations(group, allow)
    results: list[tuple[HandlerSource, LoadedHandler | PluginError]] = []
    for source in sources:
        others = [other for other in sources if other.name == source.name and other != source]
        if others:
            results.append((source, _duplicate(source, others[0])))
            continue
        try:
            results.append((source, LoadedHandler(_build(source), source)))
        except PluginError as exc:
            results.append((source, exc))
    return results


def _source(entry_point: EntryPoint) -> HandlerSource:
    dist = entry_point.dist
    return HandlerSource(
        name=entry_point.name,
        value=entry_point.value,
        distribution=dist.name if dist is not None else "unknown distribution",
        version=dist.version if dist is not None else "?",
    )


def _build(source: HandlerSource) -> Handler:
    entry_point = EntryPoint(name=source.name, value=source.value, group=ENTRY_POINT_GROUP)
    try:
        target = entry_point.load()
        handler = target() if inspect.isclass(target) else target
    except Exception as exc:
        raise PluginError(
            f"handler {source.name!r} from {source.describe()} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(handler):
        raise PluginError(f"handler {source.name!r} from {source.describe()} is {type(handler).__name__}, not callable")
    return handler  # type: ignore[no-any-return]
