// Key Vault for the relay's secrets: the webhook shared secret and the Wallarm API token, each
// created only when given. The app reads them through Key Vault references with the relay's
// user-assigned identity, whose role on the vault is assigned here: main.bicep's Function App
// module depends on this module, so the role exists before the app settings that reference it.
@description('Vault name (3-24 characters, globally unique).')
param name string
param location string
param tags object = {}
@description('Principal id of the relay identity: gets Key Vault Secrets User on the vault.')
param relayPrincipalId string
@secure()
@description('WEBHOOK_SHARED_SECRET; empty: no secret is written.')
param webhookSharedSecret string = ''
@secure()
@description('WALLARM_API_TOKEN; empty: no secret is written.')
param wallarmApiToken string = ''
@description('Secret name of the webhook shared secret (main.bicep builds the reference from it).')
param webhookSecretName string
@description('Secret name of the Wallarm API token.')
param wallarmTokenName string

// Built-in role "Key Vault Secrets User" (same id in every tenant): read secret values.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  #checkov:skip=CKV_AZURE_110:Purge protection would keep the vault name taken for the retention period after `azd down --purge`, so the environment could not be re-created; the vault holds only two values the deployment writes again (they live in the azd environment).
  #checkov:skip=CKV_AZURE_42:Recoverable means soft delete (on, 7 days) plus purge protection, which is off for the reason of CKV_AZURE_110.
  #checkov:skip=CKV_AZURE_109:The Function App (Flex Consumption without VNet integration) resolves Key Vault references over the public endpoint; access is by Entra RBAC only (no access policies, no keys).
  #checkov:skip=CKV_AZURE_189:Same as CKV_AZURE_109: the app reads the references over the public endpoint, authorised by RBAC.
  #checkov:skip=CKV2_AZURE_32:A private endpoint needs VNet integration of the Function App, which this template does not deploy.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (!empty(webhookSharedSecret)) {
  #checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the body of a conditional resource.
  #checkov:skip=CKV_AZURE_41:The secret is rotated by the operator (azd env set + azd provision); an expiry date would silently stop every webhook with 401 when it passes.
  parent: vault
  name: webhookSecretName
  properties: {
    value: webhookSharedSecret
    contentType: 'text/plain'
  }
}

resource wallarmToken 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (!empty(wallarmApiToken)) {
  #checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the body of a conditional resource.
  #checkov:skip=CKV_AZURE_41:The token's lifetime is set in Wallarm Console; an expiry here would only duplicate it and turn reconciliation off silently.
  parent: vault
  name: wallarmTokenName
  properties: {
    value: wallarmApiToken
    contentType: 'text/plain'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, relayPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
  }
}

output name string = vault.name
// https://<name>.vault.azure.net/ (per cloud), ending with a slash.
output uri string = vault.properties.vaultUri
