// One tenant's destination (issue 22, docs/TENANTS.md): Monitoring Metrics Publisher for the relay
// identity on that tenant's DCR, so the Logs Ingestion API accepts the relay's token for it.
// main.bicep deploys this module at the DCR's own resource group, and only for a DCR in the
// deployment's subscription; for any other DCR it prints the role assignment to make instead.
@description('Tenant slug (relayctl tenant add NAME): only names the deployment and the output.')
param tenantName string
@description('Resource id of the tenant\'s data collection rule (in this module\'s resource group).')
param dcrResourceId string
@description('Optional resource id of a data collection endpoint the tenant sends through. Empty: the DCR\'s own endpoint.')
param dceResourceId string = ''
@description('Principal id of the relay identity.')
param relayPrincipalId string

// Built-in role "Monitoring Metrics Publisher" (same id in every tenant).
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
var useDce = !empty(dceResourceId)

resource dcr 'Microsoft.Insights/dataCollectionRules@2024-03-11' existing = {
  name: last(split(dcrResourceId, '/'))
}

resource dce 'Microsoft.Insights/dataCollectionEndpoints@2024-03-11' existing = if (useDce) {
  name: last(split(dceResourceId, '/'))
  scope: resourceGroup(split(dceResourceId, '/')[2], split(dceResourceId, '/')[4])
}

resource relayPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  // Deterministic: a redeploy finds the same assignment instead of failing with RoleAssignmentExists.
  name: guid(dcr.id, relayPrincipalId, monitoringMetricsPublisherRoleId)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// What `relayctl tenant add` needs for this destination (LOGS_INGESTION_ENDPOINT, LOGS_DCR_IMMUTABLE_ID).
output tenantName string = tenantName
output immutableId string = dcr.properties.immutableId
output logsIngestionEndpoint string = useDce ? dce!.properties.logsIngestion.endpoint : dcr.properties.endpoints.logsIngestion
