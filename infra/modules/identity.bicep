// User-assigned managed identity the relay runs as. One identity, created before the app,
// so role assignments can be made (and propagate) independently of the Function App's lifecycle.
@description('Name of the user-assigned managed identity.')
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
