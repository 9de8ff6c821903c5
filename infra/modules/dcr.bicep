// Data collection rule (kind Direct) for the Logs Ingestion API, and the one role the relay
// needs on it. A Direct DCR has its own logsIngestion endpoint; a DCE is only needed for
// private links or when an organisation mandates one (pass its resource id).
param name string
@description('Must be the workspace region: a DCR can only send to a workspace in its own region.')
param location string
param tags object = {}
param workspaceResourceId string
@description('Stream name, from schema.json ("stream"), e.g. Custom-WallarmSentinel_CL.')
param streamName string
@description('Stream columns [{name, type}], from schema.json ("columns").')
param streamColumns array
@description('Optional existing data collection endpoint resource id. Empty: use the DCR\'s own endpoint.')
param dataCollectionEndpointResourceId string = ''
@description('Principal id of the relay identity (gets Monitoring Metrics Publisher on this DCR).')
param relayPrincipalId string
@description('Optional principal id of a developer (also gets Monitoring Metrics Publisher, for local runs).')
param developerPrincipalId string = ''
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Principal type of developerPrincipalId: ServicePrincipal when azd runs as one (CI), else ARM fails with UnmatchedPrincipalType.')
param developerPrincipalType string = 'User'

var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
var useDce = !empty(dataCollectionEndpointResourceId)
var destinationName = 'workspace'

resource dce 'Microsoft.Insights/dataCollectionEndpoints@2024-03-11' existing = if (useDce) {
  name: last(split(dataCollectionEndpointResourceId, '/'))
  scope: resourceGroup(split(dataCollectionEndpointResourceId, '/')[2], split(dataCollectionEndpointResourceId, '/')[4])
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
  name: name
  location: location
  tags: tags
  kind: 'Direct'
  properties: {
    description: 'Wallarm webhook relay -> ${streamName}'
    dataCollectionEndpointId: useDce ? dataCollectionEndpointResourceId : null
    streamDeclarations: {
      '${streamName}': {
        columns: streamColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: destinationName
          workspaceResourceId: workspaceResourceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          streamName
        ]
        destinations: [
          destinationName
        ]
        transformKql: 'source'
        outputStream: streamName
      }
    ]
  }
}

resource relayPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dcr.id, relayPrincipalId, monitoringMetricsPublisherRoleId)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource developerPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(dcr.id, developerPrincipalId, monitoringMetricsPublisherRoleId)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// The DCR drops, without an error to the caller, every field that does not match its stream
// declaration, and rows a transformation rejects. Its "Log Errors" category records those in the
// workspace table DCRLogErrors (alerted on in alerts.bicep).
resource dcrLogErrors 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'dcr-log-errors'
  scope: dcr
  properties: {
    workspaceId: workspaceResourceId
    logs: [
      {
        category: 'LogErrors'
        enabled: true
      }
    ]
  }
}

output id string = dcr.id
output immutableId string = dcr.properties.immutableId
output logsIngestionEndpoint string = useDce ? dce!.properties.logsIngestion.endpoint : dcr.properties.endpoints.logsIngestion
