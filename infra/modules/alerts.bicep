// Log alerts on the relay's own telemetry in Application Insights:
//  1. Wallarm auto-disabled the integration (integration_broken / relay.integration.disabled),
//  2. the retry backlog's oldest row is older than 30 minutes,
//  3. the Logs Ingestion API answers 403 (role missing) or 404 (wrong DCR / stream),
// and one on the workspace:
//  4. the DCR logged ingestion or transformation errors (DCRLogErrors, from the DCR's "Log Errors"
//     diagnostic setting in dcr.bicep): fields that do not match the stream are dropped silently,
// and a metric alert on the DCR itself:
//  5. the DCR dropped rows (metric RowsDropped_Count, "Logs Rows Dropped per Min").
// An action group is created only when an e-mail address is given.
// Several tenants (docs/TENANTS.md): the relay's telemetry carries a custom dimension `tenant`
// (`default` for the single integration; absent in telemetry from before tenants, read as
// `default`). Rules 1-3 return a `tenant` column and split on it, so each tenant alerts on its
// own; rule 4 is for the deployment's DCR (the default tenant's) and rule 5 has one copy per DCR.
param namePrefix string
param location string
param tags object = {}
param appInsightsId string
@description('Workspace receiving the DCR\'s Log Errors (table DCRLogErrors).')
param workspaceResourceId string
@description('The relay\'s DCR: only its errors are alerted on.')
param dcrResourceId string
@description('E-mail for alert notifications. Empty: rules fire without notification (visible in Azure Monitor).')
param alertEmail string = ''
@description('Tenants the log alerts fire for, one alert per tenant (a dimension on the `tenant` column). [\'*\']: every tenant seen, including ones added later.')
param alertTenants array = [
  '*'
]
@description('Tenants\' DCRs in this subscription [{name, dcrResourceId}]: each gets its own rows-dropped metric alert.')
param destinationDcrs array = []
@description('Backlog age threshold in seconds.')
param backlogThresholdSeconds int = 1800

var hasEmail = !empty(alertEmail)

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (hasEmail) {
  name: '${namePrefix}-ag'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'wallarmrly'
    enabled: true
    emailReceivers: [
      {
        name: 'relay-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = hasEmail ? {
  actionGroups: [
    actionGroup.id
  ]
} : {}

// Each rule's query ends with a `tenant` column (coalesce: empty or absent -> "default").
var integrationDisabledQuery = '''
union isfuzzy=true
  (customMetrics | where name == "relay.integration.disabled" and value > 0 | project timestamp, customDimensions),
  (customEvents | where name == "relay.integration.disabled" | project timestamp, customDimensions),
  (traces | where message has "integration_broken" or message has "relay.integration.disabled" | project timestamp, customDimensions)
| extend tenant = coalesce(tostring(customDimensions["tenant"]), "default")
| project timestamp, tenant
'''

var backlogQuery = '''
customMetrics
| where name == "relay.queue.oldest_pending_age_seconds"
| extend AgeSeconds = iff(isnotempty(valueMax), todouble(valueMax), todouble(value))
| extend tenant = coalesce(tostring(customDimensions["tenant"]), "default")
| project timestamp, tenant, AgeSeconds
'''

var ingestionDeniedQuery = '''
union isfuzzy=true
  (customMetrics
    | where name == "relay.delivery.attempts"
    | extend status = tostring(customDimensions["status"])
    | where status in ("403", "404")
    | project timestamp, status, customDimensions),
  (dependencies
    | where target has "ingest.monitor.azure.com" and resultCode in ("403", "404")
    | project timestamp, status = resultCode, customDimensions)
| extend tenant = coalesce(tostring(customDimensions["tenant"]), "default")
| project timestamp, tenant, status
'''

// One line: Bicep interpolates only single-quoted strings. The deployment's DCR is the default
// tenant's; another tenant's DCR logs its errors where its own diagnostic setting sends them.
var dcrLogErrorsQuery = 'DCRLogErrors | where _ResourceId =~ "${dcrResourceId}" | extend tenant = "default" | project TimeGenerated, tenant, OperationName, InputStreamId, Message'

// One alert per tenant: split on the query's `tenant` column.
var tenantDimensions = [
  {
    name: 'tenant'
    operator: 'Include'
    values: alertTenants
  }
]

resource integrationDisabled 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-integration-disabled'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Wallarm relay: integration disabled by Wallarm'
    description: 'Wallarm disables a webhook integration after 60% failed requests in 12 h. Re-enable it in Wallarm Console after fixing the cause.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: integrationDisabledQuery
          dimensions: tenantDimensions
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: actions
  }
}

resource backlogAge 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-backlog-age'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Wallarm relay: retry backlog older than 30 minutes'
    description: 'The oldest undelivered row waits longer than the threshold: ingestion is failing or throttled.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: backlogQuery
          dimensions: tenantDimensions
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'AgeSeconds'
          operator: 'GreaterThan'
          threshold: backlogThresholdSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource ingestionDenied 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-ingestion-403-404'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Wallarm relay: Logs Ingestion API 403/404'
    description: '403: the identity lacks Monitoring Metrics Publisher on the DCR (allow ~30 min after a role change). 404: wrong DCR immutable id or stream name.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: ingestionDeniedQuery
          dimensions: tenantDimensions
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource dcrLogErrors 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-dcr-log-errors'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Wallarm relay: DCR dropped or rejected data'
    description: 'The data collection rule logged errors (DCRLogErrors): fields not in the stream declaration, type mismatches or transformation errors. Compare Message with shared/schema.json; see infra/README.md, runbook.'
    severity: 2
    enabled: true
    scopes: [
      workspaceResourceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: dcrLogErrorsQuery
          dimensions: tenantDimensions
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource dcrRowsDropped 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-dcr-rows-dropped'
  location: 'global'
  tags: tags
  properties: {
    description: 'The data collection rule dropped rows (Logs Rows Dropped per Min > 0). See DCRLogErrors and infra/README.md, runbook.'
    severity: 2
    enabled: true
    scopes: [
      dcrResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'rows-dropped'
          metricNamespace: 'Microsoft.Insights/dataCollectionRules'
          metricName: 'RowsDropped_Count'
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    autoMitigate: true
    actions: hasEmail ? [
      {
        actionGroupId: actionGroup.id
      }
    ] : []
  }
}

// The same alert for each tenant's DCR in this subscription (a DCR's metrics have no tenant
// dimension: the DCR is the tenant).
resource tenantDcrRowsDropped 'Microsoft.Insights/metricAlerts@2018-03-01' = [for destination in destinationDcrs: {
  name: '${namePrefix}-dcr-rows-dropped-${destination.name}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Tenant ${destination.name}: its data collection rule dropped rows (Logs Rows Dropped per Min > 0). See docs/TENANTS.md and infra/README.md, runbook.'
    severity: 2
    enabled: true
    scopes: [
      destination.dcrResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'rows-dropped'
          metricNamespace: 'Microsoft.Insights/dataCollectionRules'
          metricName: 'RowsDropped_Count'
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    autoMitigate: true
    actions: hasEmail ? [
      {
        actionGroupId: actionGroup.id
      }
    ] : []
  }
}]

output ruleIds array = [
  integrationDisabled.id
  backlogAge.id
  ingestionDenied.id
  dcrLogErrors.id
  dcrRowsDropped.id
]
