"""Handler discovery through the ``callback_worker.handlers`` entry-point group, and routing of messages to handlers.

Discovery reads entry points without importing them, sorts them, then loads each inside its own ``try`` so that a
broken plugin stops start-up with its name and distribution. Two entry points with one name are fatal: silently
keeping one of them would route messages to whichever happened to be found first.

The allowlist (``CALLBACK_WORKER_HANDLERS``) limits the handlers a message may choose: a message naming any other is
answered with a Failure, and nothing of that handler runs.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from worker.errors import PluginError
from worker.handler import Handler, JSONValue

ENTRY_POINT_GROUP = "callback_worker.handlers"
#: The setting that lists the handlers messages may choose.
ALLOWLIST_SETTING = "CALLBACK_WORKER_HANDLERS"


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
    wanted = set(allow) if allow is not None else None
    found: dict[str, HandlerSource] = {}
    for entry_point in sorted(entry_points(group=group), key=lambda ep: (ep.name, ep.value)):
        if wanted is not None and entry_point.name not in wanted:
            continue
        source = _source(entry_point)
        if source.name in found and found[source.name] != source:
            first = found[source.name]
            raise PluginError(
                f"handler name {source.name!r} is registered twice: {first.describe()} and {source.describe()}"
            )
        found[source.name] = source
    return list(found.values())


def load_handlers(group: str = ENTRY_POINT_GROUP, allow: Iterable[str] | None = None) -> dict[str, LoadedHandler]:
    """Import and build every discovered handler. Any failure raises PluginError naming the plugin."""
    loaded: dict[str, LoadedHandler] = {}
    for source in discover(group, allow):
        loaded[source.name] = LoadedHandler(_build(source), source)
    return loaded


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


class AllowedHandlers(Mapping[str, Handler]):
    """The handlers of a worker that messages may choose: those of ``handlers`` named in ``allowed``.

    A :class:`Router` built on this mapping refuses every other name, and says that the handler is not allowed.
    """

    def __init__(self, handlers: Mapping[str, Handler], allowed: Collection[str]) -> None:
        self.allowed = frozenset(allowed)
        self._handlers = {name: handler for name, handler in handlers.items() if name in self.allowed}

    def __getitem__(self, name: str) -> Handler:
        return self._handlers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def restrict(handlers: Mapping[str, Handler], allowed: Collection[str] | None) -> Mapping[str, Handler]:
    """``handlers`` limited to the ``allowed`` names; all of them when ``allowed`` is None (no allowlist)."""
    return handlers if allowed is None else AllowedHandlers(handlers, allowed)


@dataclass(frozen=True, slots=True)
class Router:
    """Chooses a handler name for a message: its routing argument if present, else the default."""

    handlers: Mapping[str, Handler]
    default: str | None
    argument: str
    routes: Mapping[str, str] = field(default_factory=dict)
    """``"pipeline/step"`` (lower-case pipeline; either part may be ``*``) → handler name."""
    allowed: Collection[str] | None = None
    """The names messages may choose (``CALLBACK_WORKER_HANDLERS``); None: every handler. Taken from ``handlers``
    when that is an :class:`AllowedHandlers`."""

    def __post_init__(self) -> None:
        if self.allowed is None and isinstance(self.handlers, AllowedHandlers):
            object.__setattr__(self, "allowed", self.handlers.allowed)

    def allows(self, name: str) -> bool:
        """Whether a message may run the handler ``name``."""
        return self.allowed is None or name in self.allowed

    def route(
        self, arguments: Mapping[str, JSONValue], pipeline: str = "", step: str | None = None
    ) -> tuple[str, Handler | None]:
        """The chosen name and its handler, or ``None`` when no handler of that name exists or it is not allowed.

        Precedence: the routing argument; then the route table, most specific first (pipeline and step, any
        pipeline and this step, this pipeline and any step); then the default handler.
        """
        chosen = arguments.get(self.argument)
        if chosen is None and self.routes:
            chosen = self._from_table(pipeline.lower(), step)
        if chosen is None:
            chosen = self.default
        if chosen is None:
            return "", None
        name = chosen if isinstance(chosen, str) else json.dumps(chosen)
        return name, self.handlers.get(name) if self.allows(name) else None

    def _from_table(self, pipeline: str, step: str | None) -> str | None:
        keys = [f"{pipeline}/{step}", f"*/{step}"] if step is not None else []
        for key in [*keys, f"{pipeline}/*", "*/*"]:
            if key in self.routes:
                return self.routes[key]
        return None

    def unknown_reason(self, name: str) -> str:
        """The failure reason for a message routed to a handler that does not exist or is not allowed."""
        available = ", ".join(sorted(filter(self.allows, self.handlers))) or "none"
        if not name:
            return (
                f"no handler chosen: the step has no '{self.argument}' argument and no default handler is set; "
                f"available: {available}"
            )
        if not self.allows(name):
            return f"handler {name!r} is not allowed on this worker ({ALLOWLIST_SETTING}); allowed: {available}"
        return f"no handler named {name!r}; available: {available}"
