"""workbookTemplatesValidator.ts and workbooksMetadataValidator.ts, ported.

Templates: a JSON file with `$schema` and `version: "Notebook/1.0"` must not keep the default
`fromTemplateId` and must not name a resource (`subscriptions/<guid>/`).
Metadata: the WorkbooksMetadata.json entries this solution adds (pr_additions/Workbooks) against
the metadata schema, unique keys, preview image names, and that the logo and preview files exist.
In Azure-Sentinel those images live at the repository root (Workbooks/Images/Logos, .../Preview);
here they are kept in the solution's Workbooks/Images folder and a pull request copies them up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sentinel_checks.core import Finding, Solution, load_json
from sentinel_checks.schema_port import invalid_schema_message

TEMPLATE = "Workbook Template"
METADATA = "Workbooks Metadata"
GUID = r"[0-9a-fA-F]{8}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{12}"
RESOURCE = re.compile(rf"subscriptions\/{GUID}\/")

_S = {"type": "string"}
_NONEMPTY = lambda what: {"type": "array", "items": [{"type": "string", "minLength": 1, "description": what}]}  # noqa: E731
METADATA_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": [
        {
            "type": "object",
            "properties": {
                "workbookKey": _S, "logoFileName": _S, "description": _S,
                "dataTypesDependencies": _NONEMPTY("A value of a data type dependency can't be an empty string."),
                "dataConnectorsDependencies": _NONEMPTY("A value of a data connector dependency can't be an empty string."),
                "previewImagesFileNames": {"type": "array", "items": [_S]},
                "version": _S, "title": _S, "templateRelativePath": _S, "subtitle": _S, "provider": _S,
                "featureFlag": _S,
                "source": {"type": "object", "properties": {"kind": _S, "name": _S, "sourceId": _S}},
                "author": {"type": "object", "properties": {"name": _S, "email": _S, "link": _S}},
                "support": {"type": "object", "properties": {"tier": _S, "name": _S, "email": _S, "link": _S}},
                "categories": {
                    "type": "object",
                    "properties": {"domains": {"type": "array", "items": [_S]}, "verticals": {"type": "array", "items": [_S]}},
                },
                "threatAnalysisTactics": {"type": "array", "items": [_S]},
                "threatAnalysisTechniques": {"type": "array", "items": [_S]},
            },
            "required": [
                "workbookKey", "logoFileName", "description", "dataTypesDependencies", "dataConnectorsDependencies",
                "previewImagesFileNames", "version", "title", "templateRelativePath", "subtitle", "provider",
            ],
            "additionalProperties": False,
        }
    ],
}  # fmt: skip


def template_problems(text: str) -> list[str]:
    doc = load_json_text(text)
    if not (isinstance(doc, dict) and "$schema" in doc and doc.get("version") == "Notebook/1.0"):
        return []
    problems = []
    if doc.get("fromTemplateId") == "sentinel-UserWorkbook":
        problems.append('Value for "fromTemplateId" must be other than "sentinel-UserWorkbook".')
    match = RESOURCE.search(text)
    if match:
        problems.append(
            f"Contains info of a resource at offset {match.start()}. "
            "A workbook template must not contain any references to resources."
        )
    return problems


def load_json_text(text: str) -> Any:
    return json.loads(text)


def _names(entry: dict[str, Any]) -> list[str]:
    return [str(n) for n in entry.get("previewImagesFileNames") or []]


def metadata_problems(items: list[dict[str, Any]], images: Path) -> list[str]:
    """IsValidWorkbookMetadata: schema, unique keys, preview names, logo and preview files."""
    message = invalid_schema_message(items, METADATA_SCHEMA)
    if message:
        return [message]
    if len(items) > len({i["workbookKey"] for i in items}):
        return ["WorkbooksMetadata keys must be unique. Remove any duplicate keys."]
    for entry in items:
        key, names = entry["workbookKey"], _names(entry)
        if not all(n.lower().endswith(".png") for n in names):
            return [f"Invalid Preview Images for workbook {key}. All preview images must be png files"]
        if not all(
            any(c in n for c in ("Black", "black", "white", "White", "Light", "light", "Dark", "dark"))
            for n in names
        ):
            return [
                f"Invalid Preview Images for workbook {key}. All preview image file names must include either "
                '"Black", "Dark", "White" or "Light"'
            ]
        dark = sum(any(c in n for c in ("black", "Black", "dark", "Dark")) for n in names)
        light = sum(any(c in n for c in ("white", "White", "light", "Light")) for n in names)
        if dark == 0 or light == 0:
            return [
                f"Preview Image Validation failed for {key}. Preview images must contain at least one white or "
                "light background image and one black or dark background image."
            ]
    for entry in items:
        logo = entry["logoFileName"]
        if logo != "" and not (images / "Logos" / logo).exists():
            return [f"Can't locate logo image file {logo} under the Workbooks/Images/Logos directory"]
    for entry in items:
        for name in _names(entry):
            if name != "" and not (images / "Preview" / name).exists():
                return [
                    f"Can't locate preview image file {name} under the Workbooks/Images/Preview directory"
                ]
    return []


def check(solution: Solution) -> list[Finding]:
    findings = [
        Finding(TEMPLATE, solution.rel(p), m)
        for p in solution.workbooks()
        for m in template_problems(p.read_text(encoding="utf-8"))
    ]
    metadata = solution.additions / "Workbooks" / "WorkbooksMetadata.json"
    items = load_json(metadata) if metadata.exists() else []
    images = solution.root / "Workbooks" / "Images"
    findings += [
        Finding(METADATA, "pr_additions/Workbooks/WorkbooksMetadata.json", m)
        for m in metadata_problems(items, images)
    ]
    keys = {str(i.get("templateRelativePath")): str(i.get("workbookKey")) for i in items}
    for path in solution.workbooks():
        own = f"sentinel-{keys.get(path.name, path.stem)}"
        found = load_json(path).get("fromTemplateId")
        # Not one of Microsoft's checks: the id the gallery uses is "sentinel-" + the workbook key.
        if found != own:
            findings.append(
                Finding(
                    TEMPLATE,
                    solution.rel(path),
                    f'fromTemplateId is "{found}", not the workbook\'s own id "{own}"',
                )
            )
    templates = {p.name for p in solution.workbooks()}
    listed = {str(i.get("templateRelativePath")) for i in items}
    # Not one of Microsoft's checks: a workbook without a metadata entry never reaches the gallery.
    findings += [
        Finding(METADATA, f"Workbooks/{name}", "no WorkbooksMetadata entry for this workbook template")
        for name in sorted(templates - listed)
    ]
    return findings
