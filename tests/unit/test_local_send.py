"""local.send's --header: what the banner and the README tell users to pass."""

from __future__ import annotations

import argparse

import pytest

from local.send import header


def test_local_send_takes_headers_as_name_colon_value() -> None:
    assert header("X-Wallarm-Relay-Secret: a:b c ") == ("X-Wallarm-Relay-Secret", "a:b c")
    for bad in ("no colon", "x functions key: v", " x: v", "x:", ": v"):
        with pytest.raises(argparse.ArgumentTypeError, match="Name: value"):
            header(bad)
