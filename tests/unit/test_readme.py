"""The README is for users: its order, no heading twice, links that resolve, the project's own identity."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# A user's path through the README, in order (issue 20, "The README is for users").
ORDER = [
    "## Two commands",
    "## Deploy",
    "### Troubleshooting",
    "## Operate",
    "## Microsoft Sentinel solution",
]


def headings(text: str) -> list[str]:
    """Markdown headings outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.append(line.strip())
    return out


def test_no_heading_twice() -> None:
    found = headings(README.read_text(encoding="utf-8"))
    assert sorted({h for h in found if found.count(h) > 1}) == []


def test_sections_follow_a_users_path() -> None:
    found = headings(README.read_text(encoding="utf-8"))
    assert all(h in found for h in ORDER), [h for h in ORDER if h not in found]
    assert [found.index(h) for h in ORDER] == sorted(found.index(h) for h in ORDER)


def test_performance_cost_and_internals_live_in_docs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "## Performance" not in text and "## Layout" not in text
    for doc in ("docs/PERFORMANCE.md", "docs/INTERNALS.md"):
        assert f"]({doc})" in text and (ROOT / doc).is_file()


def test_relative_links_resolve() -> None:
    for doc in (README, ROOT / "docs" / "PERFORMANCE.md", ROOT / "docs" / "INTERNALS.md"):
        text = doc.read_text(encoding="utf-8")
        anchors_here = {_anchor(h) for h in headings(text)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            if not path:
                assert anchor in anchors_here, (doc.name, target)
                continue
            resolved = (doc.parent / path).resolve()
            assert resolved.exists(), (doc.name, target)
            if anchor and resolved.suffix == ".md":
                assert anchor in {_anchor(h) for h in headings(resolved.read_text(encoding="utf-8"))}, (
                    doc.name,
                    target,
                )


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    title = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def test_prices_are_stated_not_doubted() -> None:
    for doc in (README, ROOT / "docs" / "PERFORMANCE.md"):
        assert "not verified" not in doc.read_text(encoding="utf-8"), doc.name


def test_the_project_speaks_as_itself_not_as_wallarm() -> None:
    text = README.read_text(encoding="utf-8")
    assert "wallarm-sentinel-relay contributors" in text
    assert "not a\nWallarm product" in text or "not a Wallarm product" in text
    assert "3.0.0" not in text
