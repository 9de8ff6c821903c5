"""An API hit (`POST /v1/objects/hit`) as the `new_hits` notification the webhook would carry. Pure.

Reconciled hits take the webhook's own path from here on (`to_event` -> `select` -> `map_event`),
so a backfilled row has the same columns as a delivered one. The API's fields are kept as they
are; the webhook's names are added where the API has the same value under another name
(WALLARM-API.md §2.1), and RawData says the row was backfilled and which webhook fields the API
does not return.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

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


def hit_key(id_value: Any) -> str | None:
    """The hit's `id` pair (`["hits_<env>_<client>_<yyyymm>_v_1", "<doc id>"]`) as one string.

    One request can carry several hits (one per attack type or point), so `request_id` is not
    a key; the pair is. None when the value is not such a pair."""
    if isinstance(id_value, Sequence) and not isinstance(id_value, (str, bytes)) and len(id_value) == 2:
        index, doc = id_value
        if isinstance(index, str) and isinstance(doc, str) and index and doc:
            return f"{index}/{doc}"
    return None


def dedup_key(key: str) -> str:
    """The dedup-store key of one hit (hex, as shared/store/dedup.py requires)."""
    return hashlib.sha256(f"hit:{key}".encode()).hexdigest()


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
