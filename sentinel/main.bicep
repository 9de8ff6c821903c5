// Sentinel content for Wallarm, deployed into the workspace's resource group:
//   az deployment group create -g <workspace-rg> -f sentinel/main.bicep -p workspaceName=<ws>
// (infra/main.bicep deploys it too when deploySentinelContent is true.)
//
// One source: this folder is a Content Hub solution (Analytic Rules/, Hunting Queries/, Parsers/,
// Workbooks/, Data Connectors/, Data/Solution_Wallarm.json). This file loads those YAML/JSON files
// and maps them to ARM resources; it spells out no query, frequency, severity, tactic or entity.
// tests/sentinel/test_solution.py fails when a content file is not deployed here, or when the only
// literals kept here (the parsers' parameter lists) drift from the YAML.
param workspaceName string
param location string = resourceGroup().location
@description('Deploy the analytics rules (need Microsoft Sentinel onboarded on the workspace).')
param deployAnalyticsRules bool = true
@description('Deploy the data connector page (Data connectors gallery). Needs Microsoft Sentinel onboarded.')
param deployDataConnector bool = true
@description('Create Im_WebSessionCustom and ASim_WebSessionCustom so _Im_WebSession includes Wallarm hits. A workspace has one of each: leave false if you keep your own and add the Wallarm parsers to it (README).')
param registerAsimCustomParsers bool = false

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

// ---- parsers (Parsers/*.yaml, Function schema) ------------------------------------------------

var wallarmEventsParser = loadYamlContent('Parsers/WallarmEvents.yaml')
var vimWebSessionParser = loadYamlContent('Parsers/vimWebSessionWallarm.yaml')
var asimWebSessionParser = loadYamlContent('Parsers/ASimWebSessionWallarm.yaml')
var imWebSessionCustom = loadYamlContent('asim/Im_WebSessionCustom.yaml')
var asimWebSessionCustom = loadYamlContent('asim/ASim_WebSessionCustom.yaml')
// The FunctionParams of the YAML, rendered as savedSearches wants them (Bicep lambdas would do this,
// but checkov's parser cannot read them); tests/sentinel/test_solution.py checks both agree.
var asimFilterParameters = 'starttime:datetime=datetime(null), endtime:datetime=datetime(null), srcipaddr_has_any_prefix:dynamic=dynamic([]), ipaddr_has_any_prefix:dynamic=dynamic([]), url_has_any:dynamic=dynamic([]), httpuseragent_has_any:dynamic=dynamic([]), eventresultdetails_in:dynamic=dynamic([]), eventresult:string=\'*\', eventresultdetails_has_any:dynamic=dynamic([]), disabled:bool=false'
var vimWebSessionParameters = '${asimFilterParameters}, pack:bool=false'
var asimWebSessionParameters = 'disabled:bool=false, pack:bool=false'
var asimCustomParameters = 'disabled:bool=false'

resource wallarmEventsFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: wallarmEventsParser.FunctionName
  properties: {
    category: 'Wallarm'
    displayName: wallarmEventsParser.Function.Title
    functionAlias: wallarmEventsParser.FunctionAlias
    query: wallarmEventsParser.FunctionQuery
    version: 2
  }
}

resource vimWebSessionFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: vimWebSessionParser.FunctionName
  properties: {
    category: 'ASIM'
    displayName: vimWebSessionParser.Function.Title
    functionAlias: vimWebSessionParser.FunctionAlias
    functionParameters: vimWebSessionParameters
    query: vimWebSessionParser.FunctionQuery
    version: 2
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

resource asimWebSessionFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: asimWebSessionParser.FunctionName
  properties: {
    category: 'ASIM'
    displayName: asimWebSessionParser.Function.Title
    functionAlias: asimWebSessionParser.FunctionAlias
    functionParameters: asimWebSessionParameters
    query: asimWebSessionParser.FunctionQuery
    version: 2
  }
  dependsOn: [
    vimWebSessionFunction
  ]
}

resource imWebSessionCustomFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = if (registerAsimCustomParsers) {
  parent: workspace
  name: imWebSessionCustom.FunctionName
  properties: {
    category: 'ASIM'
    displayName: imWebSessionCustom.Function.Title
    functionAlias: imWebSessionCustom.FunctionAlias
    functionParameters: asimFilterParameters
    query: imWebSessionCustom.FunctionQuery
    version: 2
  }
  dependsOn: [
    vimWebSessionFunction
  ]
}

resource asimWebSessionCustomFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = if (registerAsimCustomParsers) {
  parent: workspace
  name: asimWebSessionCustom.FunctionName
  properties: {
    category: 'ASIM'
    displayName: asimWebSessionCustom.Function.Title
    functionAlias: asimWebSessionCustom.FunctionAlias
    functionParameters: asimCustomParameters
    query: asimWebSessionCustom.FunctionQuery
    version: 2
  }
  dependsOn: [
    asimWebSessionFunction
  ]
}

// ---- hunting queries (Hunting Queries/*.yaml) -------------------------------------------------

var huntingQueries = [
  loadYamlContent('Hunting Queries/WallarmHighSeverityEvents.yaml')
  loadYamlContent('Hunting Queries/WallarmHitsBySourceIp.yaml')
  loadYamlContent('Hunting Queries/WallarmUnblockedHitsByTarget.yaml')
]

// Hunting queries deployed before the Content Hub layout keep their saved-search names (updated in place).
var earlierHuntingNames = {
  'ae4d26b2-48c7-471f-8cd8-76b583e03d8c': 'wallarm-hunting-hits-by-source-ip'
  'c0102117-fb7e-4556-99c1-dc944ec595f8': 'wallarm-hunting-high-severity-7d'
}

resource hunting 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = [
  for q in huntingQueries: {
    parent: workspace
    name: contains(earlierHuntingNames, q.id) ? earlierHuntingNames[q.id] : q.id
    properties: {
      category: 'Hunting Queries'
      displayName: q.name
      query: q.query
      version: 2
      tags: [
        {
          name: 'description'
          value: q.description
        }
        {
          name: 'tactics'
          value: join(q.tactics, ',')
        }
        {
          name: 'techniques'
          value: join(q.relevantTechniques, ',')
        }
      ]
    }
    dependsOn: [
      wallarmEventsFunction
    ]
  }
]

// ---- analytic rules (Analytic Rules/*.yaml) ---------------------------------------------------

var analyticRules = [
  loadYamlContent('Analytic Rules/WallarmApiChangeOnSensitiveEndpoint.yaml')
  loadYamlContent('Analytic Rules/WallarmAttacksExceeded.yaml')
  loadYamlContent('Analytic Rules/WallarmDenylistedIpKeepsAttacking.yaml')
  loadYamlContent('Analytic Rules/WallarmHitBurstFromOneSource.yaml')
  loadYamlContent('Analytic Rules/WallarmHourlyCountMissing.yaml')
  loadYamlContent('Analytic Rules/WallarmIntegrationBroken.yaml')
  loadYamlContent('Analytic Rules/WallarmNewHighRiskFinding.yaml')
  loadYamlContent('Analytic Rules/WallarmUserOrIntegrationChange.yaml')
]
// Content Hub YAML spells the operator `gt`; ARM wants `GreaterThan`.
var triggerOperators = {
  gt: 'GreaterThan'
  lt: 'LessThan'
  eq: 'Equal'
  ne: 'NotEqual'
}
// Rules deployed before the Content Hub layout keep their resource names, so a redeploy updates
// them in place instead of adding a second copy.
var earlierRuleNames = {
  '9c78a903-4459-4b27-bded-b27201e1bf05': 'wallarm-attack-burst'
  '6880bebf-159c-46ed-afec-f1cfda08fc5a': 'wallarm-new-high-risk-finding'
  '9bb15bca-8d56-41e4-b4a8-efe66abc7aa3': 'wallarm-integration-broken'
}

// YAML durations are `15m`, `1h`, `1d`; ARM wants ISO 8601 (`PT15M`, `PT1H`, `P1D`).
resource rules 'Microsoft.SecurityInsights/alertRules@2024-09-01' = [
  for rule in (deployAnalyticsRules ? analyticRules : []): {
    scope: workspace
    name: guid(workspace.id, contains(earlierRuleNames, rule.id) ? earlierRuleNames[rule.id] : rule.id)
    kind: 'Scheduled'
    properties: {
      displayName: rule.name
      description: rule.description
      severity: rule.severity
      enabled: true
      query: rule.query
      queryFrequency: endsWith(rule.queryFrequency, 'd') ? 'P${toUpper(rule.queryFrequency)}' : 'PT${toUpper(rule.queryFrequency)}'
      queryPeriod: endsWith(rule.queryPeriod, 'd') ? 'P${toUpper(rule.queryPeriod)}' : 'PT${toUpper(rule.queryPeriod)}'
      triggerOperator: triggerOperators[rule.triggerOperator]
      triggerThreshold: rule.triggerThreshold
      suppressionEnabled: false
      suppressionDuration: 'PT1H'
      tactics: rule.tactics
      techniques: rule.relevantTechniques
      entityMappings: rule.entityMappings
      eventGroupingSettings: rule.eventGroupingSettings
      templateVersion: rule.version
      incidentConfiguration: {
        createIncident: true
        groupingConfiguration: {
          enabled: true
          reopenClosedIncident: false
          lookbackDuration: 'PT5H'
          matchingMethod: 'AllEntities'
        }
      }
    }
    dependsOn: [
      wallarmEventsFunction
    ]
  }
]

// ---- data connector page (the CCF push connector definition's connectorUiConfig) --------------
// The Deploy button's push resources (DCR, table, Entra app) come from the Content Hub package;
// from this file the page is deployed, and option B (the relay) works as written on it.

var connector = loadJsonContent('Data Connectors/Wallarm_ccf/connectorDefinition.json').properties.connectorUiConfig

resource dataConnectorPage 'Microsoft.SecurityInsights/dataConnectorDefinitions@2024-09-01' = if (deployDataConnector) {
  scope: workspace
  name: connector.id
  kind: 'Customizable'
  properties: {
    connectorUiConfig: {
      id: connector.id
      title: connector.title
      publisher: connector.publisher
      descriptionMarkdown: connector.descriptionMarkdown
      graphQueries: connector.graphQueries
      // Not in the published type, but read by the portal (Azure-Sentinel's own CCF definitions set it).
      #disable-next-line BCP037
      sampleQueries: connector.sampleQueries
      dataTypes: connector.dataTypes
      connectivityCriteria: connector.connectivityCriteria
      availability: connector.availability
      permissions: connector.permissions
      instructionSteps: connector.instructionSteps
    }
  }
}

// ---- workbook (Workbooks/*.json) ----------------------------------------------------------------

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(workspace.id, 'wallarm-overview-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: 'Wallarm overview'
    category: 'sentinel'
    sourceId: workspace.id
    serializedData: loadTextContent('Workbooks/WallarmOverview.json')
    version: '1.0'
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

output functionAlias string = wallarmEventsFunction.properties.functionAlias
