"""handlers/_addresses.py: which addresses a step's URL may lead to, from the worker's own table."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from callback_worker.handlers._addresses import embedded_ipv4, is_public

METADATA = IPv4Address("169.254.169.254")
#: The properties of :mod:`ipaddress` whose answers differ between Python versions.
VERSION_DEPENDENT = ("is_global", "is_private", "is_reserved", "ipv4_mapped", "sixtofour", "teredo")


@pytest.fixture(autouse=True)
def without_ipaddress_judgements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with ipaddress's own judgements unavailable: the table alone decides."""

    def unavailable(_: object) -> bool:
        raise AssertionError("judged by ipaddress's version-dependent tables")

    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for name in VERSION_DEPENDENT:
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, property(unavailable))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("2002:808:808::1", True),  # 6to4 of a public address
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of the metadata service
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b:1::808:808", False),  # local-use NAT64: the IPv4 position is the network's choice
        ("2002:a9fe:a9fe::1", False),  # 6to4
        ("::a9fe:a9fe", False),  # IPv4-compatible
        ("::ffff:a9fe:a9fe", False),  # IPv4-mapped
        ("::ffff:0:a9fe:a9fe", False),  # IPv4-translated
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("::", False),
        ("::1", False),
        ("100::1", False),  # discard
        ("2001:db8::1", False),  # documentation
        ("3fff::1", False),  # documentation
        ("fe80::1%eth0", False),
        ("fec0::1", False),  # site-local
        ("fd00::1", False),
        ("ff02::1", False),
        ("0.1.2.3", False),
        ("10.1.2.3", False),
        ("100.64.0.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("172.31.255.255", False),
        ("192.0.0.9", False),
        ("192.168.0.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
    ],
)
def test_the_table_gives_one_answer_on_every_python(address: str, public: bool) -> None:
    assert is_public(ip_address(address)) is public


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::a9fe:a9fe", "::ffff:a9fe:a9fe"])
def test_the_ipv4_address_an_ipv6_form_carries(address: str) -> None:
    assert embedded_ipv4(IPv6Address(address)) == METADATA


def test_a_plain_ipv6_address_carries_none() -> None:
    assert embedded_ipv4(IPv6Address("2606:4700::1111")) is None
