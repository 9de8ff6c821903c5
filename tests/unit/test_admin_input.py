"""shared.ops.admin's input rules: what an operator (or anyone holding a URL) may send the admin routes."""

from __future__ import annotations

import pytest

from shared.ops.admin import (
    KEY_CALLER,
    MAX_REASON_CHARS,
    InvalidInput,
    caller_name,
    clean_text,
    parse_ids,
    parse_reason,
    platform_auth_enabled,
)
from shared.store.queue import ENTRY_ID

GOOD_ID = "001764072000000-0000001a2b3c4d"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("DCR migration", "DCR migration"),
        ("  two\n lines\r\n", "two lines"),
        ("tab\tand\x0bvt", "tab and vt"),
        ("bell\x07 esc\x1b[31m nul\x00", "bell esc[31m nul"),
        ("bidi \u202eevil\u202c zero\u200bwidth", "bidi evil zerowidth"),
        ("line\u2028separator", "line separator"),
        ("Grüße, 障害", "Grüße, 障害"),
    ],
)
def test_clean_text_keeps_one_printable_line(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_reason_is_cleaned_and_length_limited() -> None:
    assert parse_reason("a\nb") == "a b"
    assert parse_reason("x" * MAX_REASON_CHARS) == "x" * MAX_REASON_CHARS
    with pytest.raises(InvalidInput) as info:
        parse_reason("y" * (MAX_REASON_CHARS + 1))
    assert info.value.code == "invalid_reason"
    assert "y" * 10 not in info.value.message


def test_ids_absent_means_all() -> None:
    assert parse_ids("") is None
    assert parse_ids(" , ") is None


def test_good_ids_are_kept_in_order() -> None:
    other = "001764072000001-ffffff00000000"
    assert parse_ids(f"{GOOD_ID}, {other}") == [GOOD_ID, other]


@pytest.mark.parametrize(
    "raw",
    [
        "../../x",
        GOOD_ID.upper(),
        GOOD_ID + "0",
        GOOD_ID[:-1],
        f"{GOOD_ID},pending",
        "0" * 15 + "_" + "a" * 14,
    ],
)
def test_malformed_ids_are_refused_without_repeating_them(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_ids(raw)
    assert info.value.code == "invalid_id"
    assert GOOD_ID in info.value.message  # an example of the format


def test_too_many_ids() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_ids(",".join([GOOD_ID] * 101))
    assert info.value.code == "too_many_ids"


def test_new_ids_match_the_format() -> None:
    from datetime import UTC, datetime

    from shared.store.queue import RetryQueue

    queue = RetryQueue(table=None, clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
    assert ENTRY_ID.match(queue._new_id(datetime(2026, 11, 30, tzinfo=UTC)))


@pytest.mark.parametrize(("value", "on"), [("True", True), ("true", True), ("False", False), ("", False)])
def test_platform_auth_is_read_from_website_auth_enabled(value: str, on: bool) -> None:
    assert platform_auth_enabled({"WEBSITE_AUTH_ENABLED": value}) is on


def test_principal_header_is_ignored_without_platform_auth() -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL-NAME": "mallory"}
    assert caller_name(headers, platform_auth=False) == KEY_CALLER
    assert caller_name(headers, platform_auth=True) == "mallory"


def test_principal_name_is_cleaned_and_capped() -> None:
    name = caller_name({"x-ms-client-principal-name": "a\nb" + "c" * 500}, platform_auth=True)
    assert name.startswith("a b") and len(name) == 128
    assert caller_name({"x-ms-client-principal-name": "\x00\n"}, platform_auth=True) == KEY_CALLER
    assert caller_name({}, platform_auth=True) == KEY_CALLER
