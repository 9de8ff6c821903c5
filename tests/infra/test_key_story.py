"""One story for the function key and the shared secret, wherever a user is told how to connect Wallarm.

Recommended: both in custom headers of Wallarm's webhook integration (`x-functions-key` and the
`WEBHOOK_SECRET_HEADER`, `X-Wallarm-Relay-Secret`). The key in the URL (`?code=`) is mentioned only as
the alternative, next to its risk (the URL, key included, lands in logs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where a user reads how to connect Wallarm (the Sentinel connector page and the local banner are not
# checked here yet).
TOLD = [
    "README.md",
    "SECURITY.md",
    "infra/README.md",
    "infra/scripts/connect-wallarm.sh",
    "infra/scripts/connect-wallarm.ps1",
]


@pytest.mark.parametrize("path", TOLD)
def test_both_headers_are_the_recommended_way(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    assert "x-functions-key" in text and "X-Wallarm-Relay-Secret" in text
    assert re.search(r"recommended", text, flags=re.I)


@pytest.mark.parametrize("path", TOLD)
def test_the_key_in_the_url_is_only_an_alternative_with_its_risk(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    paragraphs = re.split(r"\n\s*\n", text)
    for paragraph in paragraphs:
        if "?code=" in paragraph:
            assert "Alternative" in paragraph and "log" in paragraph, paragraph
