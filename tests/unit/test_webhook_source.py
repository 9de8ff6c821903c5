"""source_ip_from and _ip_allowed: which address the allow-list checks, and how it fails closed."""

from __future__ import annotations

import ipaddress

import pytest

from shared.intake.webhook import _ip_allowed, source_ip_from

NETS = (ipaddress.ip_network("34.94.16.0/24"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("34.94.16.5", "34.94.16.5"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::1", "::1"),
        ("  5.6.7.8  ", "5.6.7.8"),
        # The front end appends the peer last: earlier (client-written) entries never win.
        ("34.94.16.5, 9.9.9.9", "9.9.9.9"),
        ("9.9.9.9,34.94.16.5:1234", "34.94.16.5"),
        ("34.94.16.5, [2001:db8::7]:80", "2001:db8::7"),
    ],
)
def test_last_forwarded_entry_without_port(forwarded: str, expected: str) -> None:
    assert source_ip_from({"x-forwarded-for": forwarded}) == expected


def test_missing_header_is_none() -> None:
    assert source_ip_from({}) is None


def test_x_client_ip_is_used_without_x_forwarded_for() -> None:
    assert source_ip_from({"x-client-ip": " 34.94.16.9 "}) == "34.94.16.9"


def test_x_forwarded_for_beats_x_client_ip() -> None:
    assert source_ip_from({"x-forwarded-for": "1.1.1.1", "x-client-ip": "34.94.16.9"}) == "1.1.1.1"


@pytest.mark.parametrize("forwarded", ["34.94.16.5, ", "34.94.16.5,", "[2001:db8::1"])
def test_empty_last_entry_or_unclosed_bracket_is_none(forwarded: str) -> None:
    assert source_ip_from({"x-forwarded-for": forwarded}) is None


@pytest.mark.parametrize("garbage", ["garbage", "unknown", "34.94.16", "1.2.3.4:5:6x", "[zz::1]:80"])
def test_garbage_passes_through_and_is_not_allowed(garbage: str) -> None:
    source = source_ip_from({"x-forwarded-for": garbage})
    assert source is not None
    assert _ip_allowed(source, NETS) is False


@pytest.mark.parametrize(
    ("forwarded", "allowed"),
    [
        ("34.94.16.1:5678", True),
        ("34.94.16.255", True),
        ("34.94.17.1", False),
        ("[2001:db8::1]:443", True),
        ("2001:db8:ffff::1", True),
        ("2001:db9::1", False),
        # A forged first entry does not help: only the last one counts.
        ("34.94.16.1, 8.8.8.8", False),
        ("8.8.8.8, 34.94.16.1", True),
        # An IPv4-mapped IPv6 address (dual-stack socket) is the IPv4 caller; other forms are not.
        ("::ffff:34.94.16.1", True),
        ("::34.94.16.1", False),
    ],
)
def test_allow_list_via_source_ip_from(forwarded: str, allowed: bool) -> None:
    assert _ip_allowed(source_ip_from({"x-forwarded-for": forwarded}), NETS) is allowed


@pytest.mark.parametrize("source", [None, ""])
def test_no_source_is_not_allowed(source: str | None) -> None:
    assert _ip_allowed(source, NETS) is False


def test_empty_allow_list_allows_nothing_here() -> None:
    # The handler skips the check when ALLOWED_SOURCE_NETWORKS is empty; the helper itself fails closed.
    assert _ip_allowed("34.94.16.1", ()) is False
