"""Render the workbook's dark and light preview PNGs from real rows of the local stand-in.

The rows are the documented Wallarm fixtures (tests/fixtures/wallarm), mapped by the relay's own
code and uploaded with the real LogsIngestionClient to the HTTPS Logs Ingestion stand-in; the
figure then draws what the workbook's four queries show, over the rows the stand-in accepted.
Each image says so in its footer: it is stand-in data, not a screenshot of a live workspace.

    .venv/bin/python .ci/sentinel_checks/render_previews.py   # writes sentinel/Workbooks/Images/Preview
Not run by CI (matplotlib output differs across versions); the checker tests the files exist.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.monitor.ingestion import LogsIngestionClient  # noqa: E402
from wallarm_fixtures import ALL_FIXTURES, fixture_body  # noqa: E402

from local.standins import tls  # noqa: E402
from local.standins.identity import ManagedIdentityStandIn, TokenIssuer  # noqa: E402
from local.standins.logs_ingestion import LogsIngestionStandIn  # noqa: E402
from shared.intake.mapping import map_event  # noqa: E402
from shared.intake.parse import parse_body  # noqa: E402
from shared.schema import STREAM  # noqa: E402

OUT = ROOT / "sentinel" / "Workbooks" / "Images" / "Preview"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FOOTER = "Rendered from rows accepted by the local Logs Ingestion stand-in (Wallarm doc fixtures), not a live workspace"


def fixture_rows() -> list[dict[str, Any]]:
    """Every fixture, received at a spread of times over the last day (deterministic)."""
    rows: list[dict[str, Any]] = []
    for n, fixture in enumerate(ALL_FIXTURES * 3):
        body = json.loads(json.dumps(fixture_body(fixture.name)))
        if fixture.name == "new_hits":
            for i, event in enumerate(body):
                event["details"]["hit"]["remote_addr4"] = f"203.0.113.{(n + i) % 7 + 10}"
        received = NOW - timedelta(minutes=17 * n)
        for event in parse_body(json.dumps(body).encode("utf-8")).events:
            row = map_event(event, received)
            row["TimeGenerated"] = received.isoformat().replace("+00:00", "Z")
            rows.append(dict(row))
    return rows


def upload(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    issuer = TokenIssuer()
    with ManagedIdentityStandIn(issuer) as identity, LogsIngestionStandIn(issuer) as ingestion:
        os.environ.update(identity.env())
        credential = ManagedIdentityCredential()
        with LogsIngestionClient(
            ingestion.endpoint, credential=credential, connection_verify=tls.ca_bundle_path()
        ) as c:
            logs: list[MutableMapping[str, Any]] = list(rows)
            c.upload(rule_id=ingestion.dcr_id, stream_name=STREAM, logs=logs)
        credential.close()
        return ingestion.accepted


def draw(rows: list[dict[str, Any]], dark: bool, path: Path) -> None:
    plt.style.use("dark_background" if dark else "default")
    fg, face = ("#e0e0e0", "#1b1b1b") if dark else ("#202020", "#ffffff")
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), facecolor=face)
    fig.suptitle("Wallarm overview", color=fg, fontsize=16, x=0.02, ha="left")
    by_type_hour: dict[str, Counter[datetime]] = {}
    for r in rows:
        t = datetime.fromisoformat(r["TimeGenerated"].replace("Z", "+00:00")).replace(minute=0, second=0)
        by_type_hour.setdefault(r["EventType"], Counter())[t] += 1
    ax = axes[0][0]
    for name, counts in sorted(by_type_hour.items(), key=lambda kv: -sum(kv[1].values()))[:6]:
        hours = sorted(counts)
        ax.plot(hours, [counts[h] for h in hours], label=name)
    ax.set_title("Events by type", color=fg, loc="left")
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    severities = Counter(r["Severity"] for r in rows)
    axes[0][1].pie(list(severities.values()), labels=list(severities), textprops={"color": fg, "fontsize": 8})
    axes[0][1].set_title("Events by severity", color=fg, loc="left")
    top = Counter(
        r["RemoteAddr"] for r in rows if r["EventType"] == "new_hits" and r["RemoteAddr"]
    ).most_common(8)
    table(axes[1][0], "Top source IPs (hits)", ["RemoteAddr", "Hits"], [[a, str(n)] for a, n in top], fg)
    high = sorted(
        (r for r in rows if r["Severity"] == "high"), key=lambda r: r["TimeGenerated"], reverse=True
    )[:8]
    table(
        axes[1][1],
        "Recent high-severity events",
        ["TimeGenerated", "EventType", "RemoteAddr"],
        [[r["TimeGenerated"][:16], r["EventType"], r["RemoteAddr"]] for r in high],
        fg,
    )
    fig.text(0.02, 0.01, FOOTER, color=fg, fontsize=8, style="italic")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=80, facecolor=face, metadata={"Description": FOOTER, "Software": "matplotlib"})
    plt.close(fig)


def table(ax: Any, title: str, header: list[str], cells: list[list[str]], fg: str) -> None:
    ax.axis("off")
    ax.set_title(title, color=fg, loc="left")
    if cells:
        t = ax.table(cellText=cells, colLabels=header, loc="upper left", cellLoc="left")
        t.auto_set_font_size(False)
        t.set_fontsize(8)
        for cell in t.get_celld().values():
            cell.set_text_props(color=fg)
            cell.set_facecolor("none")


def main() -> int:
    rows = upload(fixture_rows())
    OUT.mkdir(parents=True, exist_ok=True)
    draw(rows, True, OUT / "WallarmOverviewBlack.png")
    draw(rows, False, OUT / "WallarmOverviewWhite.png")
    print(f"rendered {len(rows)} stand-in rows into {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
