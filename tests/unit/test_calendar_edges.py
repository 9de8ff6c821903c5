"""Red team (stop 29): values that step past the calendar or a float's range. Each once raised
OverflowError or ValueError where a clear answer or a bounded wait was due."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.completeness.wallarm_api import WallarmApi
from shared.delivery.ingestion import RETRY_AFTER_CAP_SECONDS, _retry_after
from shared.delivery.policy import RetrySchedule, next_due, parse_duration
from shared.intake.mapping import unix_time
from shared.intake.rows import read_rows
from shared.intake.selection import Selection
from shared.settings import SettingsError, load_settings

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
MINIMAL = {
    "LOGS_INGESTION_ENDPOINT": "https://dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-00000000000000000000000000000000",
    "RELAY_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**16, "1e400", "nan", float("inf"), True])
def test_a_time_no_datetime_holds_is_no_time(value: object) -> None:
    assert unix_time(value) is None


def test_a_400_digit_request_time_maps_the_hit_with_its_receive_time_and_keeps_its_batch() -> None:
    """JSON keeps such an integer whole; float() of it raised and the webhook answered 500 for
    the whole batch, so Wallarm resent it until its 60 % rule disabled the integration."""
    hit = {"request_time": 10**400, "request_id": "r-1", "id": ["hits_1", "r-1"]}
    body = [
        {"summary": "s", "details": {"notification_type": "new_hits", "client_name": "c", "hit": hit}},
        {"summary": "t", "details": {"notification_type": "system_addr_added", "client_name": "c"}},
    ]
    got = read_rows(json.dumps(body).encode(), Selection(), NOW)
    assert len(got.rows) == 2 and got.rejected == []
    assert got.rows[0]["TimeGenerated"] == "2026-12-05T12:00:00Z"


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "1e400"},
        {"retry-after-ms": "1e16"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"Retry-After": "\u0661\u0662\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660"},  # Arabic-Indic
    ],
)
def test_a_server_asking_for_a_wait_past_the_cap_gets_the_cap(headers: dict[str, str]) -> None:
    wait = _retry_after(headers)
    assert wait == RETRY_AFTER_CAP_SECONDS
    next_due(NOW, RetrySchedule.parse("1s; every 30m"), 1, wait)  # no OverflowError


@pytest.mark.parametrize("headers", [{"Retry-After": "nan"}, {"Retry-After": "Fri, 31 Dec 99999 23:59:59"}])
def test_a_retry_after_that_is_no_wait_is_ignored(headers: dict[str, str]) -> None:
    assert _retry_after(headers) is None


def test_a_retry_after_date_without_a_zone_is_read_as_utc() -> None:
    """RFC 5322's "-0000" gives a naive datetime; subtracting it from an aware one raised."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    wait = _retry_after({"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S -0000")})
    assert wait is not None and 100 < wait <= 120


@given(st.text(max_size=30), st.sampled_from(["retry-after-ms", "x-ms-retry-after-ms", "Retry-After"]))
def test_any_retry_after_is_none_or_a_bounded_wait(value: str, name: str) -> None:
    wait = _retry_after({name: value})
    assert wait is None or 0.0 <= wait <= RETRY_AFTER_CAP_SECONDS


@pytest.mark.parametrize("text", ["99999999999h", "100000000h", "721h", "\u0661\u0662s"])
def test_a_retry_step_past_30_days_or_in_other_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    with pytest.raises(SettingsError) as err:
        load_settings({**MINIMAL, "RETRY_SCHEDULE": f"1s; every {text}"})
    assert "RETRY_SCHEDULE" in str(err.value)


@pytest.mark.parametrize(
    "name",
    [
        "WATCHDOG_QUIET_HOURS",
        "COUNTER_RETENTION_DAYS",
        "LEDGER_RETENTION_DAYS",
        "DEDUP_WINDOW_HOURS",
        "AUTO_DISABLE_WINDOW_HOURS",
    ],
)
def test_a_duration_setting_past_a_century_is_refused_with_its_name(name: str) -> None:
    """1e8 days fit a timedelta but not now + it: the timers raised OverflowError every run."""
    with pytest.raises(SettingsError) as err:
        load_settings({**MINIMAL, name: "100000000"})
    assert any(p.startswith(name) and "100 years" in p for p in err.value.problems)


@pytest.fixture
def odd_length_server() -> Iterator[int]:
    """Answers every request with ``Content-Length: \\xb2`` (latin-1 "²": isdigit(), not int())."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(10)

    def serve() -> None:
        for _ in range(4):
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\nConnection: close\r\n\r\n"
                    b'{"status":200,"body":[]}'
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


def test_a_content_length_in_other_digits_is_an_api_error_not_a_crash(odd_length_server: int) -> None:
    api = WallarmApi(f"http://127.0.0.1:{odd_length_server}", "t" * 64, max_retries=0)
    assert api.hits(1, 0, 10) == []  # the length is not read; the body is, up to the cap
