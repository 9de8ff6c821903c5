"""Detection and hunting template structure, ported from Azure-Sentinel's C# schema tests.

`.script/tests/detectionTemplateSchemaValidation` validates each analytic rule YAML as a
ScheduledTemplateInternalModel (data annotations): required fields, GUID ids, lengths, the
AttackTactic enum, techniques that belong to one of the rule's tactics (KillChainTechniquesHelper),
entity types with their identifiers and required identifier sets (EntityMappingIdentifiers), 1-5
entity mappings of 1-3 fields, query length <= 10,000, queryFrequency/queryPeriod between 5
minutes and 14 days with period >= frequency. DetectionTemplateSchemaValidationTests.cs adds the
connector id list (ValidConnectorIds.json) and unique template ids. Each check returns problems
as strings (empty: valid); `check` turns them into findings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from sentinel_checks.core import Finding, Solution, load_json, load_yaml

TACTICS: Final[frozenset[str]] = frozenset(
    {
        "InitialAccess", "Execution", "Persistence", "PrivilegeEscalation", "DefenseEvasion",
        "CredentialAccess", "Discovery", "LateralMovement", "Collection", "Exfiltration",
        "CommandAndControl", "Impact", "Reconnaissance", "ResourceDevelopment",
        "ImpairProcessControl", "InhibitResponseFunction",
    }
)  # fmt: skip

# KillChainTechniquesHelper: enterprise techniques per tactic (ICS T08xx ids left out).
TECHNIQUES_BY_TACTIC: Final[Mapping[str, frozenset[str]]] = {
    tactic: frozenset(ids.split())
    for tactic, ids in {
        "Reconnaissance": "T1595 T1592 T1589 T1590 T1591 T1598 T1597 T1596 T1593 T1594",
        "ResourceDevelopment": "T1583 T1586 T1584 T1587 T1585 T1588 T1608",
        "InitialAccess": "T1078 T1091 T1133 T1195 T1199 T1200 T1189 T1190 T1566",
        "Execution": "T1047 T1053 T1059 T1072 T1106 T1129 T1203 T1204 T1559 T1569",
        "Persistence": "T1037 T1053 T1078 T1098 T1136 T1137 T1176 T1197 T1133 T1205 T1505 T1525 T1542 "
        "T1543 T1546 T1547 T1554 T1574 T1556",
        "PrivilegeEscalation": "T1037 T1053 T1055 T1068 T1078 T1134 T1484 T1543 T1546 T1547 T1548 T1574 "
        "T1611",
        "DefenseEvasion": "T1006 T1014 T1027 T1036 T1055 T1070 T1078 T1112 T1127 T1134 T1140 T1197 T1202 "
        "T1205 T1207 T1211 T1216 T1218 T1220 T1221 T1222 T1480 T1484 T1497 T1535 T1542 T1548 T1550 T1553 "
        "T1556 T1562 T1564 T1574 T1578 T1599 T1600 T1601 T1612 T1610",
        "CredentialAccess": "T1003 T1040 T1056 T1110 T1111 T1187 T1212 T1528 T1539 T1552 T1555 T1556 "
        "T1557 T1558 T1606 T1613 T1614",
        "Discovery": "T1007 T1010 T1012 T1016 T1018 T1033 T1040 T1046 T1049 T1057 T1069 T1082 T1083 T1087 "
        "T1120 T1124 T1135 T1201 T1217 T1482 T1497 T1518 T1526 T1538 T1580",
        "LateralMovement": "T1021 T1072 T1080 T1091 T1210 T1534 T1550 T1563 T1570",
        "Collection": "T1005 T1025 T1039 T1056 T1074 T1113 T1114 T1115 T1119 T1123 T1125 T1185 T1213 "
        "T1530 T1557 T1560 T1602 T1609 T1610",
        "Exfiltration": "T1011 T1020 T1029 T1030 T1041 T1048 T1052 T1537 T1567",
        "CommandAndControl": "T1001 T1008 T1071 T1090 T1092 T1095 T1102 T1104 T1105 T1132 T1205 T1219 "
        "T1568 T1571 T1572 T1573",
        "Impact": "T1485 T1486 T1489 T1490 T1491 T1495 T1496 T1498 T1499 T1529 T1531 T1561 T1565",
    }.items()
}

# EntityMappingIdentifiers: allowed identifiers, and the sets of which one must be mapped.
ENTITY_IDENTIFIERS: Final[Mapping[str, tuple[frozenset[str], tuple[frozenset[str], ...]]]] = {
    "Account": (
        frozenset({"Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId",
                   "AadUserId", "PUID", "IsDomainJoined", "DisplayName", "ObjectGuid"}),
        tuple(frozenset({i}) for i in ("FullName", "Sid", "Name", "AadUserId", "PUID", "ObjectGuid")),
    ),
    "AzureResource": (frozenset({"ResourceId"}), (frozenset({"ResourceId"}),)),
    "CloudApplication": (
        frozenset({"AppId", "Name", "InstanceName"}),
        (frozenset({"AppId"}), frozenset({"Name"})),
    ),
    "DNS": (frozenset({"DomainName"}), (frozenset({"DomainName"}),)),
    "File": (frozenset({"Directory", "Name"}), (frozenset({"Name"}),)),
    "FileHash": (frozenset({"Algorithm", "Value"}), (frozenset({"Algorithm", "Value"}),)),
    "Host": (
        frozenset({"DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID", "OMSAgentID",
                   "OSFamily", "OSVersion", "IsDomainJoined"}),
        tuple(frozenset({i}) for i in ("FullName", "HostName", "NetBiosName", "AzureID", "OMSAgentID")),
    ),
    "IP": (frozenset({"Address"}), (frozenset({"Address"}),)),
    "Malware": (frozenset({"Name", "Category"}), (frozenset({"Name"}),)),
    "Process": (frozenset({"ProcessId", "CommandLine", "ElevationToken", "CreationTimeUtc"}),
                (frozenset({"CommandLine"}), frozenset({"ProcessId"}))),
    "URL": (frozenset({"Url"}), (frozenset({"Url"}),)),
}  # fmt: skip

SEVERITIES: Final[frozenset[str]] = frozenset({"Informational", "Low", "Medium", "High"})
TRIGGER_OPERATORS: Final[frozenset[str]] = frozenset({"gt", "lt", "eq", "ne"})
AGGREGATION_KINDS: Final[frozenset[str]] = frozenset({"SingleAlert", "AlertPerResult"})
MAX_QUERY_CHARS: Final[int] = 10_000
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
DURATION = re.compile(r"^(\d+)([mhd])$")
RULE_KEYS: Final[frozenset[str]] = frozenset(
    {"id", "name", "description", "severity", "requiredDataConnectors", "queryFrequency", "queryPeriod",
     "triggerOperator", "triggerThreshold", "tactics", "relevantTechniques", "query", "entityMappings",
     "eventGroupingSettings", "version", "kind"}
)  # fmt: skip
HUNTING_KEYS: Final[frozenset[str]] = frozenset(
    {"id", "name", "description", "requiredDataConnectors", "tactics", "relevantTechniques", "query",
     "entityMappings", "version"}
)  # fmt: skip
CONNECTOR_KEYS: Final[frozenset[str]] = frozenset(
    {"id", "title", "publisher", "descriptionMarkdown", "graphQueries", "sampleQueries", "dataTypes",
     "connectivityCriteria", "availability", "permissions", "instructionSteps"}
)  # fmt: skip


def duration(text: Any) -> timedelta | None:
    match = DURATION.match(str(text))
    if not match:
        return None
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _mitre_problems(doc: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    tactics = doc.get("tactics") or []
    techniques = doc.get("relevantTechniques") or []
    if not tactics:
        problems.append("no tactics (MITRE mapping is mandatory)")
    if not techniques:
        problems.append("no relevantTechniques")
    problems += [f"unknown tactic {t!r}" for t in tactics if t not in TACTICS]
    for technique in techniques:
        if not TECHNIQUE.match(str(technique)):
            problems.append(f"technique {technique!r} is not T#### or T####.###")
            continue
        base = str(technique).split(".")[0]
        if not any(base in TECHNIQUES_BY_TACTIC.get(t, frozenset()) for t in tactics):
            problems.append(f"technique {technique} belongs to none of the tactics {tactics}")
    return problems


def _entity_problems(mappings: Any, query: str) -> list[str]:
    if not isinstance(mappings, list) or not 1 <= len(mappings) <= 5:
        return ["entityMappings must list 1 to 5 mappings"]
    problems: list[str] = []
    for mapping in mappings:
        kind = mapping.get("entityType")
        if kind not in ENTITY_IDENTIFIERS:
            problems.append(f"unknown entity type {kind!r}")
            continue
        allowed, required = ENTITY_IDENTIFIERS[kind]
        fields = mapping.get("fieldMappings") or []
        if not 1 <= len(fields) <= 3:
            problems.append(f"{kind}: 1 to 3 fieldMappings")
        identifiers = {f.get("identifier") for f in fields}
        problems += [f"{kind}: identifier {i!r} not allowed" for i in sorted(identifiers - allowed, key=str)]
        if not any(need <= identifiers for need in required):
            problems.append(f"{kind}: maps none of the required identifiers")
        for f in fields:
            column = str(f.get("columnName", ""))
            if not re.search(rf"\b{re.escape(column)}\b", query):
                problems.append(f"{kind}: column {column!r} does not appear in the query")
    return problems


def _common_problems(doc: Mapping[str, Any], keys: frozenset[str]) -> list[str]:
    problems = [f"missing {k}" for k in sorted(keys - doc.keys())]
    problems += [f"unexpected key {k}" for k in sorted(doc.keys() - keys)]
    if not GUID.match(str(doc.get("id", ""))):
        problems.append("id is not a lower-case GUID")
    if not 0 < len(str(doc.get("name", ""))) <= 256:
        problems.append("name must be 1-256 characters")
    if not 0 < len(str(doc.get("description", ""))) <= 5000:
        problems.append("description must be 1-5000 characters")
    if not SEMVER.match(str(doc.get("version", ""))):
        problems.append("version is not a.b.c")
    query = str(doc.get("query", ""))
    if not 0 < len(query) <= MAX_QUERY_CHARS:
        problems.append(f"query must be 1-{MAX_QUERY_CHARS} characters")
    problems += _mitre_problems(doc)
    if "entityMappings" in doc:
        problems += _entity_problems(doc["entityMappings"], query)
    return problems


def rule_problems(doc: Mapping[str, Any]) -> list[str]:
    """The analytic rule checks (Scheduled rules)."""
    problems = _common_problems(doc, RULE_KEYS)
    if doc.get("kind") != "Scheduled":
        problems.append("kind must be Scheduled")
    if doc.get("severity") not in SEVERITIES:
        problems.append(f"severity {doc.get('severity')!r} not in {sorted(SEVERITIES)}")
    if doc.get("triggerOperator") not in TRIGGER_OPERATORS:
        problems.append(f"triggerOperator {doc.get('triggerOperator')!r} not in {sorted(TRIGGER_OPERATORS)}")
    threshold = doc.get("triggerThreshold")
    if not isinstance(threshold, int) or not 0 <= threshold <= 10_000:
        problems.append("triggerThreshold must be an integer 0-10000")
    frequency, period = duration(doc.get("queryFrequency")), duration(doc.get("queryPeriod"))
    low, high = timedelta(minutes=5), timedelta(days=14)
    if frequency is None or not low <= frequency <= high:
        problems.append("queryFrequency must be 5m..14d written as <n>m, <n>h or <n>d")
    if period is None or not low <= period <= high:
        problems.append("queryPeriod must be 5m..14d written as <n>m, <n>h or <n>d")
    if frequency and period and period < frequency:
        problems.append("queryPeriod is shorter than queryFrequency")
    if "entityMappings" not in doc:
        problems.append("no entityMappings")
    grouping = doc.get("eventGroupingSettings") or {}
    if grouping.get("aggregationKind") not in AGGREGATION_KINDS:
        problems.append("eventGroupingSettings.aggregationKind must be SingleAlert or AlertPerResult")
    return problems


def hunting_problems(doc: Mapping[str, Any]) -> list[str]:
    return _common_problems(doc, HUNTING_KEYS)


def duplicated_ids(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, int] = {}
    for doc in docs:
        seen[str(doc.get("id"))] = seen.get(str(doc.get("id")), 0) + 1
    return sorted(i for i, n in seen.items() if n > 1)


def valid_connector_ids(solution: Solution) -> set[str]:
    """Microsoft's list is not vendored; only what this solution's pull request adds to it."""
    path = (
        solution.additions
        / ".script"
        / "tests"
        / "detectionTemplateSchemaValidation"
        / "ValidConnectorIds.json"
    )
    return set(load_json(path)) if path.exists() else set()


def connector_id_problem(doc: Mapping[str, Any], valid: set[str]) -> str | None:
    """Validate_DetectionTemplates_HasValidConnectorIds."""
    if "requiredDataConnectors" not in doc:
        return None
    ids = [str(c.get("connectorId")) for c in doc["requiredDataConnectors"] or []]
    bad = [i for i in ids if i not in valid]
    if not bad:
        return None
    return (
        f"Template Id:'{doc.get('id')}' doesn't have valid connectorIds:'{','.join(bad)}'. If a new connector is used "
        "and already configured in the Portal, please add it's Id to the list in 'ValidConnectorIds.json' file."
    )


def check(solution: Solution) -> list[Finding]:
    findings: list[Finding] = []
    valid = valid_connector_ids(solution)
    docs = []
    for path, kind in [
        *((p, "rule") for p in solution.rules()),
        *((p, "hunting") for p in solution.hunting()),
    ]:
        doc = load_yaml(path)
        docs.append(doc)
        problems = rule_problems(doc) if kind == "rule" else hunting_problems(doc)
        findings += [Finding("Detection Schema", solution.rel(path), p) for p in problems]
        message = connector_id_problem(doc, valid)
        if message:
            findings.append(Finding("Detection Schema", solution.rel(path), message))
    for folder in ("Analytic Rules", "Hunting Queries"):
        for path in solution.folder(folder, ""):
            if not path.name.endswith(".yaml"):
                findings.append(
                    Finding(
                        "Detection Schema",
                        solution.rel(path),
                        "All the files in detections folder are supposed to end with .yaml",
                    )
                )
    for dup in duplicated_ids(docs):
        findings.append(
            Finding(
                "Detection Schema",
                "Analytic Rules",
                f"There should not be 2 templates with the same ID, but the id {dup} is duplicated.",
            )
        )
    return findings
