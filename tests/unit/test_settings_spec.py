"""The settings table in shared/settings.py against the README's settings table and the dataclasses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from shared.intake.selection import Selection
from shared.settings import (
    COMPLETENESS_FLAGS,
    COMPLETENESS_NUMBERS,
    NUMBERS,
    READ_ELSEWHERE,
    SELECTION_FLAGS,
    TEXTS,
    CompletenessSettings,
    Flag,
    Number,
    Settings,
    load_settings,
)

README = Path(__file__).resolve().parents[2] / "README.md"
MINIMAL = {
    "LOGS_INGESTION_ENDPOINT": "https://dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-00000000000000000000000000000000",
    "RELAY_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


def readme_defaults() -> dict[str, str]:
    """Setting -> its default cell, from the README's settings table (``A` / `B`` rows split)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Settings") :]
    section = section[: section.index("\n## ", 1)]
    out: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = cells[1].split(" / ") if " / " in cells[0] else [cells[1]] * len(names)
        for name, default in zip(names, defaults, strict=True):
            out[name] = default.strip().strip("`")
    return out


def readme_number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def all_numbers() -> list[Number]:
    return [*NUMBERS.values(), *COMPLETENESS_NUMBERS.values()]


def all_flags() -> list[Flag]:
    return [*SELECTION_FLAGS, *COMPLETENESS_FLAGS.values()]


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    documented = readme_defaults()
    expected = {n.name: readme_number(n.default) for n in all_numbers()}
    expected |= {f.name: str(f.default).lower() for f in all_flags()}
    expected |= {t.name: t.default for t in TEXTS}
    assert {name: documented.get(name) for name in expected} == expected


def test_the_readme_documents_no_setting_the_relay_does_not_read() -> None:
    known = {n.name for n in all_numbers()} | {f.name for f in all_flags()} | {t.name for t in TEXTS}
    # Read by the Functions host, the SDKs, relayctl or local.run (shared.settings.READ_ELSEWHERE).
    assert set(readme_defaults()) - known <= set(READ_ELSEWHERE)


def test_the_dataclasses_take_their_defaults_from_the_table() -> None:
    settings = {f.name: f.default for f in dataclasses.fields(Settings)}
    for number in NUMBERS.values():
        assert settings[number.field] == number.value, number.name
    completeness = CompletenessSettings()
    for number in COMPLETENESS_NUMBERS.values():
        assert getattr(completeness, number.field) == number.value, number.name
    for flag in COMPLETENESS_FLAGS.values():
        assert getattr(completeness, flag.field) == flag.default, flag.name
    for flag in SELECTION_FLAGS:
        assert getattr(Selection(), flag.field) == flag.default, flag.name


def test_unset_settings_load_as_their_defaults() -> None:
    settings = load_settings(MINIMAL)
    for number in NUMBERS.values():
        assert getattr(settings, number.field) == number.value, number.name
    for number in COMPLETENESS_NUMBERS.values():
        assert getattr(settings.completeness, number.field) == number.value, number.name
    for flag in SELECTION_FLAGS:
        assert getattr(settings.selection, flag.field) == flag.default, flag.name


@pytest.mark.parametrize("number", all_numbers(), ids=lambda n: n.name)
def test_each_number_is_read_and_checked(number: Number) -> None:
    below = readme_number(number.minimum - 1)
    with pytest.raises(ValueError, match=f"{number.name}='{below}' must be at least"):
        load_settings({**MINIMAL, number.name: below})


@pytest.mark.parametrize("flag", all_flags(), ids=lambda f: f.name)
def test_each_flag_is_read_and_checked(flag: Flag) -> None:
    with pytest.raises(ValueError, match=f"{flag.name}='perhaps' is not a boolean"):
        load_settings({**MINIMAL, flag.name: "perhaps"})
