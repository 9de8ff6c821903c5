// Sentinel content for Wallarm, deployed into the workspace's resource group:
//   az deployment group create -g <workspace-rg> -f sentinel/main.bicep -p workspaceName=<ws>
// (infra/main.bicep deploys it too when deploySentinelContent is true.)
// Every query lives in a .kql file under kql/ and is loaded here, so the .kql files are the
// single source (and tests/infra checks their column list against shared/schema.json).
param workspaceName string
param location string = resourceGroup().location
@description('Deploy the analytics rules (need Microsoft Sentinel onboarded on the workspace).')
param deployAnalyticsRules bool = true
var burstThresholdNote = '100 hits / 10 min'

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource wallarmEventsFunction 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: 'WallarmEvents'
  properties: {
    category: 'Wallarm'
    displayName: 'WallarmEvents: Wallarm events (relay table and legacy Data Collector tables)'
    functionAlias: 'WallarmEvents'
    query: loadTextContent('kql/WallarmEvents.kql')
    version: 2
  }
}

resource asimWebSessionParser 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: 'ASimWebSessionWallarm'
  properties: {
    category: 'ASIM'
    displayName: 'Web Session ASIM parser for Wallarm hits'
    functionAlias: 'ASimWebSessionWallarm'
    query: loadTextContent('kql/ASimWebSessionWallarm.kql')
    version: 2
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

resource huntingHitsByIp 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: 'wallarm-hunting-hits-by-source-ip'
  properties: {
    category: 'Hunting Queries'
    displayName: 'Wallarm hits by source IP'
    query: loadTextContent('kql/hunting-hits-by-source-ip.kql')
    version: 2
    tags: [
      {
        name: 'description'
        value: 'Source addresses with the most Wallarm hits in the last 7 days, with attack types and targets.'
      }
      {
        name: 'tactics'
        value: 'Reconnaissance,InitialAccess'
      }
    ]
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

resource huntingHighSeverity 'Microsoft.OperationalInsights/workspaces/savedSearches@2025-02-01' = {
  parent: workspace
  name: 'wallarm-hunting-high-severity-7d'
  properties: {
    category: 'Hunting Queries'
    displayName: 'Wallarm high-severity events in the last 7 days'
    query: loadTextContent('kql/hunting-high-severity-7d.kql')
    version: 2
    tags: [
      {
        name: 'description'
        value: 'High-severity Wallarm events (vulnerabilities, security issues) of the last 7 days.'
      }
      {
        name: 'tactics'
        value: 'InitialAccess'
      }
    ]
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

resource ruleAttackBurst 'Microsoft.SecurityInsights/alertRules@2024-09-01' = if (deployAnalyticsRules) {
  scope: workspace
  name: guid(workspace.id, 'wallarm-attack-burst')
  kind: 'Scheduled'
  properties: {
    displayName: 'Wallarm: attack burst from one IP'
    description: 'Many Wallarm hits from one source address within 10 minutes (${burstThresholdNote}).'
    severity: 'Medium'
    enabled: true
    query: loadTextContent('kql/rule-attack-burst.kql')
    queryFrequency: 'PT15M'
    queryPeriod: 'PT1H'
    triggerOperator: 'GreaterThan'
    triggerThreshold: 0
    suppressionEnabled: false
    suppressionDuration: 'PT1H'
    tactics: [
      'InitialAccess'
    ]
    entityMappings: [
      {
        entityType: 'IP'
        fieldMappings: [
          {
            identifier: 'Address'
            columnName: 'RemoteAddr'
          }
        ]
      }
    ]
    eventGroupingSettings: {
      aggregationKind: 'AlertPerResult'
    }
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        enabled: true
        reopenClosedIncident: false
        lookbackDuration: 'PT6H'
        matchingMethod: 'AllEntities'
      }
    }
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

resource ruleHighRiskFinding 'Microsoft.SecurityInsights/alertRules@2024-09-01' = if (deployAnalyticsRules) {
  scope: workspace
  name: guid(workspace.id, 'wallarm-new-high-risk-finding')
  kind: 'Scheduled'
  properties: {
    displayName: 'Wallarm: new high-risk vulnerability or security issue'
    description: 'Wallarm reported a new high-risk vulnerability (vuln_high) or a critical/high security issue.'
    severity: 'High'
    enabled: true
    query: loadTextContent('kql/rule-new-high-risk-finding.kql')
    queryFrequency: 'PT1H'
    queryPeriod: 'PT1H'
    triggerOperator: 'GreaterThan'
    triggerThreshold: 0
    suppressionEnabled: false
    suppressionDuration: 'PT1H'
    tactics: [
      'InitialAccess'
    ]
    entityMappings: [
      {
        entityType: 'URL'
        fieldMappings: [
          {
            identifier: 'Url'
            columnName: 'Url'
          }
        ]
      }
    ]
    eventGroupingSettings: {
      aggregationKind: 'AlertPerResult'
    }
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        enabled: false
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

resource ruleIntegrationBroken 'Microsoft.SecurityInsights/alertRules@2024-09-01' = if (deployAnalyticsRules) {
  scope: workspace
  name: guid(workspace.id, 'wallarm-integration-broken')
  kind: 'Scheduled'
  properties: {
    displayName: 'Wallarm: integration broken or disabled'
    description: 'Wallarm disabled an integration (integration_broken after repeated failures, or disable_integration).'
    severity: 'Medium'
    enabled: true
    query: loadTextContent('kql/rule-integration-broken.kql')
    queryFrequency: 'PT1H'
    queryPeriod: 'PT1H'
    triggerOperator: 'GreaterThan'
    triggerThreshold: 0
    suppressionEnabled: false
    suppressionDuration: 'PT1H'
    tactics: [
      'DefenseEvasion'
    ]
    eventGroupingSettings: {
      aggregationKind: 'SingleAlert'
    }
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        enabled: false
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

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(workspace.id, 'wallarm-overview-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: 'Wallarm overview'
    category: 'sentinel'
    sourceId: workspace.id
    serializedData: loadTextContent('workbooks/wallarm-overview.json')
    version: '1.0'
  }
  dependsOn: [
    wallarmEventsFunction
  ]
}

output functionAlias string = wallarmEventsFunction.properties.functionAlias
