"""local.send's --header: what the banner and the README tell users to pass."""

from __future__ import annotations

import argparse

import pytest

from local.send import header


def test_local_send_takes_headers_as_name_colon_value() -> None:
    assert header("X-Wallarm-Relay-Secret: a:b c ") == ("X-Wallarm-Relay-Secret", "a:b c")
    for bad in ("no colon", "x functions key: v", " x: v", ": v"):
        with pytest.raises(argparse.ArgumentTypeError, match="Name: value"):
            header(bad)


def test_an_empty_value_drops_the_header_as_curl_does() -> None:
    """The README's one command passes `"X-Wallarm-Relay-Secret: $WEBHOOK_SHARED_SECRET"` whether
    or not a secret is set; unset, the header is left out rather than the command refused."""
    assert header("X-Wallarm-Relay-Secret: ") == ("X-Wallarm-Relay-Secret", "")
    assert header("x:") == ("x", "")


def test_the_banner_says_when_the_allow_list_refuses_its_own_commands() -> None:
    import ipaddress

    from local.run import allow_list_note

    assert allow_list_note(()) is None
    assert allow_list_note((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))) is None
    note = allow_list_note((ipaddress.ip_network("34.94.16.0/24"), ipaddress.ip_network("2001:db8::/32")))
    assert note is not None
    assert "403 source_not_allowed" in note
