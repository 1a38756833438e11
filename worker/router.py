"""Routing a message to a handler: its routing argument, the route table, or the default; within the allowlist.

The allowlist (``CALLBACK_WORKER_HANDLERS``) limits the handlers a message may choose: a message naming any other is
answered with a Failure, and nothing of that handler runs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from callback_worker.worker.handler import Handler, JSONValue

#: The setting that lists the handlers messages may choose.
ALLOWLIST_SETTING = "CALLBACK_WORKER_HANDLERS"


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
