// Application Insights for the relay: workspace-based, local (instrumentation-key) auth off, so
// telemetry is accepted only with an Entra token of an identity holding Monitoring Metrics
// Publisher on this component (the relay identity, assigned here).
param name string
param location string
param tags object = {}
param workspaceResourceId string
param relayPrincipalId string

var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: name
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspaceResourceId
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource relayPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, relayPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output id string = appInsights.id
output name string = appInsights.name
