"""Which IP addresses a step's URL may lead to: public unicast only, judged from a fixed table.

The table follows IANA's special-purpose address registries and does not use :mod:`ipaddress`'s ``is_global`` or
``is_private``, whose tables differ between Python versions (how NAT64, 6to4 and IPv4-compatible addresses are judged
changed within 3.11, 3.12 and 3.13 releases): the answer is the same on every Python the worker supports.

An IPv6 address that carries an IPv4 address a router or translator would deliver to — IPv4-mapped
(``::ffff:a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
(``64:ff9b::/96``) and 6to4 (``2002::/16``) — is judged by that IPv4 address. Teredo (``2001::/32``) and the rest of
the IETF protocol block ``2001::/23``, and the local-use NAT64 block ``64:ff9b:1::/48`` (whose IPv4 position depends
on a prefix length only the network knows), are never public.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Address = IPv4Address | IPv6Address

#: IPv4 blocks that are not public unicast: this-network, private, shared (CGN), loopback, link-local, IETF protocol
#: assignments, documentation, the 6to4 relay anycast, benchmarking, multicast, reserved and broadcast.
NON_PUBLIC_IPV4: tuple[IPv4Network, ...] = tuple(
    IPv4Network(block)
    for block in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
#: IPv6 global unicast: everything outside it (loopback, unspecified, ULA, link- and site-local, multicast, discard
#: and the forms above that carry an IPv4 address) is not public, or is judged by its IPv4 address.
GLOBAL_UNICAST = IPv6Network("2000::/3")
#: Blocks inside 2000::/3 that are not public unicast: IETF protocol assignments (Teredo among them),
#: documentation (two blocks) and 6to4 (judged by its IPv4 address before this table is read).
NON_PUBLIC_IPV6: tuple[IPv6Network, ...] = tuple(
    IPv6Network(block) for block in ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")
)
#: IPv6 blocks whose low 32 bits are an IPv4 address: mapped, translated, compatible (with ``::`` and ``::1``) and
#: the well-known NAT64 prefix.
LOW_32_BITS_IPV4: tuple[IPv6Network, ...] = tuple(
    IPv6Network(block) for block in ("::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96")
)
SIX_TO_FOUR = IPv6Network("2002::/16")


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address a translator or tunnel would deliver ``address`` to, if it has one."""
    if any(address in block for block in LOW_32_BITS_IPV4):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in SIX_TO_FOUR:
        return IPv4Address((int(address) >> 80) & 0xFFFF_FFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether ``address`` is public unicast; an IPv6 address carrying an IPv4 address is judged by that address."""
    if isinstance(address, IPv6Address):
        carried = embedded_ipv4(address)
        if carried is not None:
            return is_public(carried)
        return address in GLOBAL_UNICAST and not any(address in block for block in NON_PUBLIC_IPV6)
    return not any(address in block for block in NON_PUBLIC_IPV4)
