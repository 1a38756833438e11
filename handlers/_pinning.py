"""Connecting to the addresses a step URL's check approved, not to what a second look-up of its host says.

The ``http`` handler checks every address a step's host resolves to before it sends anything. Were the connection
then to resolve the host again, whoever answers for that name's DNS could answer a public address to the check and a
private one (the metadata service, an internal service) to the connection a moment later. So while a step's request
is under way, :class:`PinnedResolver` answers that host with exactly the addresses the check approved (TLS server name
and ``Host`` stay the name; only the look-up is skipped); a host the check did not look up (the configured ``URL``,
never checked) resolves as aiohttp would resolve it. The session keeps no DNS cache of its own, so an answer given
for one request never serves another.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from ipaddress import IPv6Address

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from callback_worker.handlers._addresses import Address

#: The host of the request under way in this task and the addresses its check approved.
_approved: ContextVar[tuple[str, tuple[Address, ...]] | None] = ContextVar("approved_addresses", default=None)


@contextmanager
def approved(host: str, addresses: Sequence[Address]) -> Iterator[None]:
    """Within the block, :class:`PinnedResolver` answers ``host`` with ``addresses`` (in this task)."""
    token = _approved.set((host.lower(), tuple(addresses)))
    try:
        yield
    finally:
        _approved.reset(token)


class PinnedResolver(AbstractResolver):
    """Answers the checked host with its approved addresses; any other host as aiohttp's default resolver does."""

    def __init__(self) -> None:
        self._default = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pinned = _approved.get()
        if pinned is None:
            return await self._default.resolve(host, port, family)
        checked, addresses = pinned
        if host.lower() != checked:  # no redirect is followed and no proxy used: only the checked host is dialled
            raise OSError(f"{host!r} was not checked for this request")
        found = [_result(host, address, port) for address in addresses]
        return [item for item in found if family in (socket.AF_UNSPEC, item["family"])]

    async def close(self) -> None:
        await self._default.close()


def _result(host: str, address: Address, port: int) -> ResolveResult:
    family = socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    return {"hostname": host, "host": str(address), "port": port, "family": family, "proto": 0, "flags": flags}
