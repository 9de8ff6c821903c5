"""Rows as Wallarm's own Microsoft Sentinel integration writes them (the native path), built from
the same documented webhook bodies as the relay's rows, without the relay's mapping code.

What is documented (FACTS.md, Wallarm docs): the same 11 columns in WallarmSentinel_CL; Url is the
hit's `path` (no host), RequestId the hit's `request_id`, RemoteAddr its `remote_addr4`, RawData the
whole notification object; vulnerabilities are `vuln_high|medium|low`; every security issue is
EventType `security_issue` with the risk in Severity; Severity takes high/medium/low/info and the
sample hit row is `high`. Where Wallarm documents nothing the builder takes the case least
favourable to the content: RemoteAddr and Url empty outside hits, vulnerabilities and security
issues; every hit `high` (blocked or not); TimeGenerated the time Wallarm sends the event.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from wallarm_fixtures import fixture_body

SEVERITIES = {"critical": "high", "high": "high", "medium": "medium", "low": "low", "info": "info"}


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def native_row(event: dict[str, Any], sent_at: datetime) -> dict[str, str]:
    details = event.get("details") or {}
    kind = str(details.get("notification_type") or "")
    hit = details.get("hit") or {}
    row = {
        "TimeGenerated": _iso(sent_at),
        "Vendor": "Wallarm",
        "EventType": kind,
        "Severity": "info",
        "ClientName": str(details.get("client_name") or ""),
        "Summary": str(event.get("summary") or ""),
        "Description": str(event.get("description") or ""),
        "RequestId": "",
        "RemoteAddr": "",
        "Url": "",
        "RawData": json.dumps(event, ensure_ascii=False),
    }
    if kind == "new_hits":
        row.update(
            Severity="high",
            RequestId=str(hit.get("request_id") or ""),
            RemoteAddr=str(hit.get("remote_addr4") or ""),
            Url=str(hit.get("path") or ""),
        )
    elif kind == "vuln":
        vuln = details.get("vuln") or {}
        level = str(vuln.get("threat") or "").lower()
        row.update(
            EventType=f"vuln_{level}",
            Severity=SEVERITIES.get(level, "medium"),
            Url=str(vuln.get("path") or ""),
        )
    elif kind == "security_issue":
        issue = details.get("security_issue") or {}
        risk = str(issue.get("risk") or "").lower()
        row.update(Severity=SEVERITIES.get(risk, "info"), Url=str(issue.get("path") or ""))
    return row


def native_rows(name: str, sent_at: datetime, edit: Any = None) -> list[dict[str, str]]:
    """The native rows for fixture `name` (a list body, or a bare object), optionally edited first."""
    body = copy.deepcopy(fixture_body(name))
    if edit is not None:
        body = edit(body)
    events = body if isinstance(body, list) else [body]
    return [
        native_row(e, sent_at) for e in events if isinstance(e, dict) and isinstance(e.get("details"), dict)
    ]
