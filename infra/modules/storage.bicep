// Storage for the Functions host (AzureWebJobsStorage: timer leases), the Flex Consumption
// deployment package, and the relay's own tables (retry queue, ledger, state, counters).
// Shared keys are off: everything, the host included, authenticates with the identity.
param name string
param location string
param tags object = {}
@description('Blob container holding the Flex Consumption deployment package.')
param deploymentContainerName string
@description('Principal id of the relay identity.')
param relayPrincipalId string
@description('Optional principal id of a developer (table access for local runs against this account).')
param developerPrincipalId string = ''
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Principal type of developerPrincipalId (ServicePrincipal when azd runs as one, e.g. in CI).')
param developerPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  #checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches storage over public endpoints; access is Entra ID only (shared keys off).
  #checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS) replication is used; geo-replication adds cost without value for transient retry rows and host leases.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35; use a VNet-integrated variant with private endpoints to close public access.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Zone-redundant: the retry queue must survive a zone outage; geo-replication is not needed
    // because the data is transient (rows awaiting delivery).
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource relayRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in items(roles): {
  name: guid(storage.id, relayPrincipalId, roleId.value)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId.value)
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource developerTableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(storage.id, developerPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = 'https://${storage.name}.table.${environment().suffixes.storage}'
