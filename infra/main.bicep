// wallarm-sentinel-relay: Wallarm webhooks -> Function App -> Logs Ingestion API -> WallarmSentinel_CL.
// Resource-group scoped, so it deploys with `azd up` (AZURE_RESOURCE_GROUP set) or plainly with
// `az deployment group create -g <rg> -f infra/main.bicep`. The Log Analytics workspace may be
// created here or be an existing one in another resource group.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(32)
@description('Environment name (azd): feeds the unique suffix of every resource name.')
param environmentName string

@description('Region of the relay resources (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('true: create a Log Analytics workspace in this resource group. false: use workspaceName in workspaceResourceGroup.')
param createWorkspace bool = true

@description('Workspace name (existing one when createWorkspace is false). Empty: a generated name.')
param workspaceName string = ''

@description('Resource group of an existing workspace (may differ from the relay\'s). Empty: this resource group.')
param workspaceResourceGroup string = ''

@minValue(4)
@maxValue(730)
@description('Interactive (analytics) retention of WallarmSentinel_CL in days.')
param tableRetentionInDays int = 90

@minValue(4)
@maxValue(4383)
@description('Total retention (interactive + long-term) of WallarmSentinel_CL in days.')
param tableTotalRetentionInDays int = 365

@description('Optional resource id of an existing data collection endpoint (private link setups). Empty: the DCR\'s own endpoint.')
param dataCollectionEndpointResourceId string = ''

@description('Onboard Microsoft Sentinel on the workspace (extra cost per GB).')
param enableSentinel bool = false

@description('Deploy the Sentinel content in ../sentinel (function, hunting queries, analytics rules, workbook). Needs Sentinel on the workspace.')
param deploySentinelContent bool = enableSentinel

@description('E-mail for relay health alerts. Empty: alert rules without notification.')
param alertEmail string = ''

@description('Versionless Key Vault secret URI holding the webhook shared secret (recommended). The relay identity needs Key Vault Secrets User on it.')
param webhookSecretKeyVaultUri string = ''

@secure()
@description('Webhook shared secret as a plain app setting; only used when webhookSecretKeyVaultUri is empty.')
param webhookSharedSecret string = ''

@description('Request header carrying the shared secret (configure the same header in the Wallarm webhook integration).')
param webhookSecretHeader string = 'X-Wallarm-Relay-Secret'

@description('Comma-separated CIDRs allowed to call the webhook (Wallarm Cloud US/EU IPs). Empty: no source filter in the app.')
param allowedSourceNetworks string = ''

@description('NCRONTAB (6 fields) of the hourly request-count job.')
param hourlyCountSchedule string = '0 0 * * * *'

@description('NCRONTAB (6 fields) of the retry worker.')
param retryWorkerSchedule string = '0 * * * * *'

@description('NCRONTAB of the completeness timer: watchdog, then reconciliation with Wallarm\'s API (off without WALLARM_API_TOKEN).')
param completenessSchedule string = '0 20 * * * *'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@minValue(0)
@maxValue(20)
@description('Always-ready instances of the webhook (Flex HTTP group) against cold starts. 0: scale from zero. Each one bills its memory around the clock (infra/README.md, cost).')
param alwaysReadyHttp int = 0

@description('Optional principal id of the deploying user (azd sets AZURE_PRINCIPAL_ID): gets ingestion and table roles for local runs.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Type of principalId (azd sets AZURE_PRINCIPAL_TYPE): ServicePrincipal when azd runs as one, e.g. in CI.')
param principalType string = 'User'

// One schema for everything: the table columns, the DCR stream declaration and the Python mapping
// (shared/schema.py) all read this file.
var schema = loadJsonContent('../shared/schema.json')
var tableColumns = [for column in schema.columns: {
  name: column.name
  type: column.type
  description: column.description
}]
var streamColumns = [for column in schema.columns: {
  name: column.name
  type: column.type
}]

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'wallarm-sentinel-relay'
}
var functionAppName = 'func-wallarm-${resourceToken}'
var effectiveWorkspaceName = !empty(workspaceName) ? workspaceName : 'log-wallarm-${resourceToken}'
var effectiveWorkspaceRg = createWorkspace || empty(workspaceResourceGroup) ? resourceGroup().name : workspaceResourceGroup
var deploymentContainerName = 'app-package-${take(resourceToken, 8)}'
// Entra audience of the Logs Ingestion API in this cloud (the relay asks for <audience>/.default).
var ingestionAudiences = {
  AzureCloud: 'https://monitor.azure.com'
  AzureUSGovernment: 'https://monitor.azure.us'
  AzureChinaCloud: 'https://monitor.azure.cn'
}
var ingestionAudience = contains(ingestionAudiences, environment().name) ? ingestionAudiences[environment().name] : ingestionAudiences.AzureCloud

module identity 'modules/identity.bicep' = {
  name: 'identity-${resourceToken}'
  params: {
    name: 'id-wallarm-${resourceToken}'
    location: location
    tags: tags
  }
}

module workspace 'modules/workspace.bicep' = {
  name: 'workspace-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    createNew: createWorkspace
    name: effectiveWorkspaceName
    location: location
    tags: tags
  }
}

module table 'modules/table.bicep' = {
  name: 'table-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    workspaceName: workspace.outputs.name
    tableName: schema.table
    columns: tableColumns
    retentionInDays: tableRetentionInDays
    totalRetentionInDays: tableTotalRetentionInDays
  }
}

module dcr 'modules/dcr.bicep' = {
  name: 'dcr-${resourceToken}'
  params: {
    name: 'dcr-wallarm-${resourceToken}'
    location: workspace.outputs.location
    tags: tags
    workspaceResourceId: workspace.outputs.id
    streamName: schema.stream
    streamColumns: streamColumns
    dataCollectionEndpointResourceId: dataCollectionEndpointResourceId
    relayPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
  dependsOn: [
    // The output stream's table must exist before the DCR is validated.
    table
  ]
}

module storage 'modules/storage.bicep' = {
  name: 'storage-${resourceToken}'
  params: {
    name: 'stwallarm${take(resourceToken, 13)}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    relayPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring-${resourceToken}'
  params: {
    name: 'appi-wallarm-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: workspace.outputs.id
    relayPrincipalId: identity.outputs.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp-${resourceToken}'
  params: {
    name: functionAppName
    planName: 'asp-wallarm-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.name
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttp: alwaysReadyHttp
    webhookSecretKeyVaultUri: webhookSecretKeyVaultUri
    webhookSharedSecret: webhookSharedSecret
    relaySettings: {
      LOGS_INGESTION_ENDPOINT: dcr.outputs.logsIngestionEndpoint
      LOGS_DCR_IMMUTABLE_ID: dcr.outputs.immutableId
      LOGS_STREAM_NAME: schema.stream
      LOGS_INGESTION_AUDIENCE: ingestionAudience
      WEBHOOK_SECRET_HEADER: webhookSecretHeader
      ALLOWED_SOURCE_NETWORKS: allowedSourceNetworks
      HOURLY_COUNT_SCHEDULE: hourlyCountSchedule
      RETRY_WORKER_SCHEDULE: retryWorkerSchedule
      COMPLETENESS_SCHEDULE: completenessSchedule
      LOGS_WORKSPACE_ID: workspace.outputs.customerId
    }
  }
}

// Reconciliation reads the table (README "Completeness"): Log Analytics Reader on the workspace.
module readerRole 'modules/reader-role.bicep' = {
  name: 'reader-role-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    workspaceName: workspace.outputs.name
    relayPrincipalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts-${resourceToken}'
  params: {
    namePrefix: 'wallarm-relay-${resourceToken}'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.id
    workspaceResourceId: workspace.outputs.id
    dcrResourceId: dcr.outputs.id
    alertEmail: alertEmail
  }
}

module sentinelOnboarding 'modules/sentinel-onboarding.bicep' = if (enableSentinel) {
  name: 'sentinel-onboarding-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    workspaceName: workspace.outputs.name
  }
}

module sentinelContent '../sentinel/main.bicep' = if (deploySentinelContent) {
  name: 'sentinel-content-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    workspaceName: workspace.outputs.name
    location: workspace.outputs.location
  }
  dependsOn: [
    sentinelOnboarding
    table
  ]
}

// Settings the relay (and a local run) needs. No keys or secrets: the function key is read with
// `az functionapp function keys list` (see infra/README.md).
output LOGS_INGESTION_ENDPOINT string = dcr.outputs.logsIngestionEndpoint
output LOGS_DCR_IMMUTABLE_ID string = dcr.outputs.immutableId
output LOGS_STREAM_NAME string = schema.stream
output LOGS_INGESTION_AUDIENCE string = ingestionAudience
output RELAY_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output WEBHOOK_URL string = 'https://${functionApp.outputs.defaultHostName}/api/wallarm'
output LOG_ANALYTICS_WORKSPACE_ID string = workspace.outputs.id
output AZURE_LOCATION string = location
