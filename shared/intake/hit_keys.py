"""One hit's identity: its `id` pair as a string, and the dedup-store key made of it. Pure.

Both ways a hit can reach the table use them: the webhook's late-hit guard and reconciliation's
backfill, so a hit claimed by one is seen by the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


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
