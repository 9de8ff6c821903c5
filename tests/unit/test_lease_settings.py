"""Issue 19, finding 10: RETRY_CLAIM_LEASE_SECONDS is checked against WORKER_READ_TIMEOUT_SECONDS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.settings import SettingsError, load_settings

MINIMAL: dict[str, str] = {
    "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com/",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
    "RELAY_STORAGE_TABLE_ENDPOINT": "https://relaystore.table.core.windows.net/",
}


def test_the_issues_lease_of_10_s_with_a_30_s_read_timeout_is_refused_with_the_least_that_works() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, "RETRY_CLAIM_LEASE_SECONDS": "10", "WORKER_READ_TIMEOUT_SECONDS": "30"})
    (problem,) = info.value.problems
    assert "RETRY_CLAIM_LEASE_SECONDS=10" in problem and "WORKER_READ_TIMEOUT_SECONDS=30" in problem
    assert "at least 66" in problem  # 2 x (30 s read + 3 s connect)


def test_a_longer_read_timeout_alone_makes_the_default_lease_too_short() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, "WORKER_READ_TIMEOUT_SECONDS": "120"})
    assert "at least 246" in info.value.problems[0]


@pytest.mark.parametrize(
    ("lease", "read"),
    [("180", "60"), ("126", "60"), ("16", "5"), ("10", "2")],
)
def test_a_lease_that_holds_one_request_twice_over_is_accepted(lease: str, read: str) -> None:
    settings = load_settings(
        {**MINIMAL, "RETRY_CLAIM_LEASE_SECONDS": lease, "WORKER_READ_TIMEOUT_SECONDS": read}
    )
    assert settings.claim_lease == timedelta(seconds=float(lease))


def test_the_defaults_pass_and_the_problem_is_listed_with_the_others() -> None:
    assert load_settings(MINIMAL).claim_lease == timedelta(seconds=180)
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                **MINIMAL,
                "RETRY_CLAIM_LEASE_SECONDS": "10",
                "WORKER_READ_TIMEOUT_SECONDS": "30",
                "AUTO_DISABLE_FAILURE_RATIO": "2",
            }
        )
    assert len(info.value.problems) == 2
