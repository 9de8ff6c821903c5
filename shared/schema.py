"""The 11 columns of WallarmSentinel_CL, read from schema.json (also loaded by infra/ Bicep)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

_SCHEMA = json.loads((Path(__file__).with_name("schema.json")).read_text(encoding="utf-8"))

TABLE: Final[str] = _SCHEMA["table"]
STREAM: Final[str] = _SCHEMA["stream"]
COLUMNS: Final[tuple[str, ...]] = tuple(c["name"] for c in _SCHEMA["columns"])
COLUMN_TYPES: Final[dict[str, str]] = {c["name"]: c["type"] for c in _SCHEMA["columns"]}
SEVERITIES: Final[tuple[str, ...]] = ("high", "medium", "low", "info")

# A row as sent to the Logs Ingestion API: column name -> JSON value.
Row = dict[str, str]
