"""Where each ported rule comes from: a file of github.com/Azure/Azure-Sentinel at a commit.

The commits are those the stored copies were read at (the search index's snapshot of the
repository, read on 2026-12-04). Where only a newer, unpinned copy was available, that is said.
"""

from __future__ import annotations

from typing import Final

REPO: Final[str] = "Azure/Azure-Sentinel"
SOURCES: Final[dict[str, tuple[str, str]]] = {
    "dataConnector.category": (
        ".script/dataConnectorValidator.ts",
        "018e96733b25ca24a361cbcd8b1371005db97a9d",
    ),
    "dataConnector.schema": (
        ".script/utils/schemas/REST_API_ConnectorSchema.json",
        "84ca86a4dd2dae03e22f21bb267e1f5726b03fe0",
    ),
    "dataConnector.id": (
        ".script/utils/dataConnectorCheckers/idChecker.ts",
        "7cc969c5420991f4e65c2ee2a483536075a5f825",
    ),
    "dataConnector.dataType": (
        ".script/utils/dataConnectorCheckers/dataTypeChecker.ts",
        "37b09b6105ad1a61f4d9b9f81fae74119fb048af",
    ),
    "dataConnector.permissions": (
        ".script/utils/dataConnectorCheckers/permissionsChecker.ts",
        "newest stored copy (ESM imports, LogsIngestionAPIPermissions profile); the index gives no commit for it,"
        " the previous one is 0f9e1541ace9229fc3020d5409de774bd7aa3d6f",
    ),
    "workbookTemplate.fromTemplateId": (
        ".script/utils/workbookCheckers/workbookTemplateCheckers/fromTemplateIdChecker.ts",
        "51be4ea9808b9ce60a2aed329f652073957601cf",
    ),
    "workbookTemplate.resourceInfo": (
        ".script/utils/workbookCheckers/workbookTemplateCheckers/containResourceInfoChecker.ts",
        "doesNotContainResourceInfo version (regex ends with '/'); stored without a commit id",
    ),
    "workbookTemplate.isWorkbook": (
        ".script/workbookTemplatesValidator.ts",
        "newest stored copy (isValidWorkbookJson)",
    ),
    "workbooksMetadata.schema": (
        ".script/utils/schemas/workbooksMetadataSchema.json",
        "1b4ccf67c11f615b5400fbe44a4f4e5f8893becb",
    ),
    "workbooksMetadata.uniqueKeys": (
        ".script/utils/workbookCheckers/uniqueWorkbookKeyChecker.ts",
        "6e2a7134e362955fdc102f869af56d187e7e4952",
    ),
    "workbooksMetadata.previewImages": (
        ".script/utils/workbookCheckers/previewImageChecker.ts",
        "newest stored copy (Black/Dark/White/Light names)",
    ),
    "workbooksMetadata.imagesExist": (
        ".script/utils/workbookCheckers/imageExistChecker.ts",
        "0cd56f13db62686c858003e146494ed26fa3e88f",
    ),
    "detection.connectorIds": (
        ".script/tests/detectionTemplateSchemaValidation/DetectionTemplateSchemaValidationTests.cs",
        "022d95dfa703f4f4f38e53792dca6eab02b33dc4",
    ),
    "detection.structure": (
        ".script/tests/detectionTemplateSchemaValidation/Models/*.cs (ScheduledTemplateInternalModel, "
        "KillChainTechniquesHelper, EntityMappingIdentifiers)",
        "749f8bfe2a39daf5035d587e82b1806f2dcf1891 (ScheduledTemplateInternalModel.cs)",
    ),
    "kql.customTables": (
        ".script/tests/KqlvalidationsTests/CustomTablesSchemasLoader.cs",
        "7238f42ef3d09e4e63a8199fc14f47c9ade62508",
    ),
    "kql.customFunctions": (
        ".script/tests/KqlvalidationsTests/FunctionSchemasLoaders/ParsersCustomJsonDirectoryFunctionsLoader.cs",
        "52feacfc397cbae1ad30d7ca39e2d085a87caf7c",
    ),
    "nonAscii": (
        ".script/tests/NonAsciiValidationsTests/NonAsciiValidationsTests.cs",
        "84ca86a4dd2dae03e22f21bb267e1f5726b03fe0",
    ),
    "documentsLink": (".script/documentsLinkValidator.ts", "22caf9bc2e05f1468ba4c494503ff79dd00232ed"),
    "idChange": (".script/idChangeValidator.ts", "046a22f7c60b93d0b62201401228b27e82471c8e"),
    "solution.branding": (
        ".script/SolutionValidations/validMSBranding.ts",
        "048e6c30e6654aedb0c82d92b2ef3ce708657aa1",
    ),
    "solution.support": (
        ".script/SolutionValidations/validSupportObject.ts",
        "009a36b9bd014f15fe50a412ab0a8c874ecbfcfb",
    ),
    "solution.domains": (
        ".script/SolutionValidations/validDomainsVerticals.ts",
        "370cdcf423ebf0b8bb18ec64a6e46d130aa9357a",
    ),
    "solution.domainList": (
        ".script/SolutionValidations/ValidDomainsVerticals.json",
        "bd3bf57a1e19dff871194db812d7675bbf4a6598",
    ),
    "asim.schemaTester": (
        "ASIM/dev/ASimTester/Testers/ASimSchemaTester.yaml",
        "5b2f75bdf8a3242c0076a0dd8007b4fa79b32bd8",
    ),
    "asim.dataTester": (
        "ASIM/dev/ASimTester/Testers/ASimDataTester.yaml",
        "80f4ccd5f8497fec40c2675705777bf32e35798f",
    ),
    "asim.fields": ("ASIM/dev/ASimTester/ASimTester.csv", "008828c5ba276d0c85573a99487ed87e35533726"),
}


def cite(rule: str) -> str:
    path, commit = SOURCES[rule]
    return f"{REPO}/{path} @ {commit}"
