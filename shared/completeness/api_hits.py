"""An API hit (`POST /v1/objects/hit`) as the `new_hits` notification the webhook would carry. Pure.

Reconciled hits take the webhook's own path from here on (`to_event` -> `select` -> `map_event`),
so a backfilled row has the same columns as a delivered one. The API's fields are kept as they
are; the webhook's names are added where the API has the same value under another name
(Wallarm's hit object, `POST /v1/objects/hit`), and RawData says the row was backfilled and
which webhook fields the API does not return.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

# The keys live with intake (the late-hit guard claims them too); the jobs here import them from this module.
from shared.intake.hit_keys import dedup_key as dedup_key
from shared.intake.hit_keys import hit_key as hit_key

BACKFILL_KEY: Final[str] = "_relay_backfill"
# Fields of a webhook hit that `/v1/objects/hit` does not return (one extra call per hit would).
MISSING_FROM_API: Final[tuple[str, ...]] = (
    "method",
    "parameter",
    "payloads",
    "create_time",
    "headers",
    "remote_port",
    "response_time",
)
# API name -> webhook name, for the values both carry.
_RENAMED: Final[tuple[tuple[str, str], ...]] = (
    ("domain", "host"),
    ("time", "request_time"),
    ("statuscode", "response_status"),
    ("size", "response_len"),
)


def notification_from_api_hit(
    hit: Mapping[str, Any], *, client_name: str, cloud: str, reconciled_at: str
) -> dict[str, Any]:
    """The `{summary, details: {notification_type: new_hits, hit}}` envelope of one API hit."""
    out: dict[str, Any] = dict(hit)
    for api_name, webhook_name in _RENAMED:
        if api_name in hit and webhook_name not in hit:
            out[webhook_name] = hit[api_name]
    ip = hit.get("ip")
    if isinstance(ip, str) and "remote_addr4" not in hit and "remote_addr6" not in hit:
        out["remote_addr4"], out["remote_addr6"] = _split_ip(ip)
    value = hit.get("value")
    if "payloads" not in hit and isinstance(value, str):
        out["payloads"] = [value]  # the API keeps the payload at the hit's point only
    pool = hit.get("poolid")
    if "applications" not in hit and pool is not None:
        out["applications"] = pool if isinstance(pool, list) else [pool]
    return {
        "summary": "[Wallarm] New hit detected",
        "details": {"client_name": client_name, "cloud": cloud, "notification_type": "new_hits", "hit": out},
        BACKFILL_KEY: {
            "source": "wallarm_api",
            "endpoint": "POST /v1/objects/hit",
            "reconciled_at": reconciled_at,
            "missing_fields": [f for f in MISSING_FROM_API if f not in out],
        },
    }


def _split_ip(ip: str) -> tuple[str | None, str | None]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip, None
    return (None, ip) if address.version == 6 else (ip, None)
