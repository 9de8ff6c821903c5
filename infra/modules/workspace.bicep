// Log Analytics workspace: creates one, or looks up an existing one (in this module's scope,
// which main.bicep sets to the workspace's resource group; that may differ from the app's).
@description('true: create the workspace; false: use an existing one with this name.')
param createNew bool
param name string
param location string = resourceGroup().location
param tags object = {}
@minValue(30)
@maxValue(730)
@description('Interactive retention of the workspace in days (only when it is created here). Sentinel includes 90 days.')
param retentionInDays int = 90

resource newWorkspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = if (createNew) {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Only Entra ID (RBAC) access; the shared keys the legacy Data Collector API used stay unused.
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource existingWorkspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = if (!createNew) {
  name: name
}

output id string = createNew ? newWorkspace.id : existingWorkspace.id
output name string = name
output customerId string = createNew ? newWorkspace.properties.customerId : existingWorkspace.properties.customerId
output location string = createNew ? newWorkspace.location : existingWorkspace.location
