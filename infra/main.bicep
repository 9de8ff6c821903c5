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

@description('Versionless Key Vault secret URI of a webhook shared secret kept in your own vault. The relay identity needs Key Vault Secrets User on it. Prefer webhookSharedSecret: the deployment then keeps it in its own vault and grants the role itself.')
param webhookSecretKeyVaultUri string = ''

@secure()
@description('App setting WEBHOOK_SHARED_SECRET. Stored as a secret in the deployment\'s Key Vault; the app setting is a Key Vault reference. Empty: no shared secret (unless webhookSecretKeyVaultUri).')
param webhookSharedSecret string = ''

@secure()
@description('App setting WALLARM_API_TOKEN (turns reconciliation on). Stored as a secret in the deployment\'s Key Vault; the app setting is a Key Vault reference. Empty: reconciliation off.')
param wallarmApiToken string = ''

// Every other app setting a user may change (shared/settings.py, README "Settings"), with the code's
// default; azd fills each from the azd environment value of the setting's own name
// (main.parameters.json), so a redeploy keeps what the last one set. tests/infra/test_settings_parameters.py
// holds this list against the settings spec.
@description('App setting MAX_BODY_BYTES (README, Settings).')
param maxBodyBytes string = '5242880'

@description('App setting WEBHOOK_DELIVERY_BUDGET_SECONDS (README, Settings).')
param webhookDeliveryBudgetSeconds string = '6'

@description('App setting WEBHOOK_READ_TIMEOUT_SECONDS (README, Settings).')
param webhookReadTimeoutSeconds string = '4'

@description('App setting WORKER_READ_TIMEOUT_SECONDS (README, Settings).')
param workerReadTimeoutSeconds string = '60'

@description('App setting RETRY_WORKER_RUN_SECONDS (README, Settings).')
param retryWorkerRunSeconds string = '50'

@description('App setting RETRY_POLL_SECONDS (README, Settings).')
param retryPollSeconds string = '1'

@description('App setting RETRY_CLAIM_LEASE_SECONDS (README, Settings).')
param retryClaimLeaseSeconds string = '180'

@description('App setting AUTO_DISABLE_FAILURE_RATIO (README, Settings).')
param autoDisableFailureRatio string = '0.6'

@description('App setting AUTO_DISABLE_WINDOW_HOURS (README, Settings).')
param autoDisableWindowHours string = '12'

@description('App setting AUTO_DISABLE_MIN_ATTEMPTS (README, Settings).')
param autoDisableMinAttempts string = '20'

@description('App setting AUTO_DISABLE_GRACE_MINUTES (README, Settings).')
param autoDisableGraceMinutes string = '40'

@description('App setting RECOVERY_PROBE_SECONDS (README, Settings).')
param recoveryProbeSeconds string = '30'

@description('App setting LANDED_CHECK_DELAY_SECONDS (README, Settings).')
param landedCheckDelaySeconds string = '300'

@description('App setting DEDUP_WINDOW_HOURS (README, Settings).')
param dedupWindowHours string = '24'

@description('App setting LEDGER_RETENTION_DAYS (README, Settings).')
param ledgerRetentionDays string = '7'

@description('App setting COUNTER_RETENTION_DAYS (README, Settings).')
param counterRetentionDays string = '35'

@description('App setting RECONCILE_DELAY_MINUTES (README, Settings).')
param reconcileDelayMinutes string = '30'

@description('App setting RECONCILE_OVERLAP_MINUTES (README, Settings).')
param reconcileOverlapMinutes string = '60'

@description('App setting RECONCILE_CATCH_UP_HOURS (README, Settings).')
param reconcileCatchUpHours string = '6'

@description('App setting RECONCILE_MAX_RANGE_HOURS (README, Settings).')
param reconcileMaxRangeHours string = '168'

@description('App setting RECONCILE_MAX_AGE_DAYS (README, Settings).')
param reconcileMaxAgeDays string = '90'

@description('App setting RECONCILE_CONFIRM_MINUTES (README, Settings).')
param reconcileConfirmMinutes string = '50'

@description('App setting WATCHDOG_QUIET_HOURS (README, Settings).')
param watchdogQuietHours string = '3'

@allowed([
  'true'
  'false'
])
@description('App setting SELECT_HITS (README, Settings).')
param selectHits string = 'true'

@allowed([
  'true'
  'false'
])
@description('App setting SELECT_HIT_HEADERS (README, Settings).')
param selectHitHeaders string = 'false'

@allowed([
  'true'
  'false'
])
@description('App setting SELECT_SYSTEM_EVENTS (README, Settings).')
param selectSystemEvents string = 'true'

@allowed([
  'true'
  'false'
])
@description('App setting SELECT_VULNERABILITIES (README, Settings).')
param selectVulnerabilities string = 'true'

@allowed([
  'true'
  'false'
])
@description('App setting SELECT_HOURLY_COUNT (README, Settings).')
param selectHourlyCount string = 'true'

@allowed([
  'true'
  'false'
])
@description('App setting WATCHDOG_CHECK_INTEGRATION (README, Settings).')
param watchdogCheckIntegration string = 'false'

@allowed([
  'true'
  'false'
])
@description('App setting WATCHDOG_REENABLE (README, Settings).')
param watchdogReenable string = 'false'

@description('App setting RELAY_TABLE_PREFIX (README, Settings).')
param relayTablePrefix string = 'wallarmrelay'

@description('App setting WEBHOOK_SECRET_HEADER (README, Settings).')
param webhookSecretHeader string = 'X-Wallarm-Relay-Secret'

@description('App setting ALLOWED_SOURCE_NETWORKS (README, Settings). Empty: unset, so the relay\'s default (— (all)).')
param allowedSourceNetworks string = ''

@description('App setting SELECT_SECURITY_ISSUE_RISKS (README, Settings). Empty: unset, so the relay\'s default (all).')
param selectSecurityIssueRisks string = ''

@description('App setting RETRY_SCHEDULE (README, Settings). Empty: unset, so the relay\'s default (Wallarm\'s).')
param retrySchedule string = ''

@description('App setting WALLARM_API_CLOUD (README, Settings). Empty: unset, so the relay\'s default (—).')
param wallarmApiCloud string = ''

@description('App setting WALLARM_API_URL (README, Settings). Empty: unset, so the relay\'s default (per cloud).')
param wallarmApiUrl string = ''

@description('App setting WALLARM_CLIENT_ID (README, Settings). Empty: unset, so the relay\'s default (— (asked once)).')
param wallarmClientId string = ''

@description('App setting LOGS_QUERY_ENDPOINT (README, Settings).')
param logsQueryEndpoint string = 'https://api.loganalytics.io'

@description('App setting WALLARM_INTEGRATION_URL (README, Settings). Empty: unset, so the relay\'s default (https://$WEBSITE_HOSTNAME/api/wallarm).')
param wallarmIntegrationUrl string = ''

@description('App setting RETRY_WORKER_SCHEDULE (README, Settings).')
param retryWorkerSchedule string = '0 * * * * *'

@description('App setting HOURLY_COUNT_SCHEDULE (README, Settings).')
param hourlyCountSchedule string = '0 0 * * * *'

@description('App setting COMPLETENESS_SCHEDULE (README, Settings).')
param completenessSchedule string = '0 20 * * * *'

// Several tenants (docs/TENANTS.md). Tenants themselves are data (the tenant registry table, managed
// with relayctl), not settings; this list only lets the deployment grant the relay identity its
// role on each tenant's DCR. No credentials here: a tenant's secrets are Key Vault references.
@description('Tenants\' destinations: [{name: tenant slug, dcrResourceId, dceResourceId (optional)}]. A DCR in this subscription gets Monitoring Metrics Publisher for the relay identity; for any other DCR the output DESTINATION_ROLE_COMMANDS gives the role assignment to make (docs/TENANTS.md).')
param destinations array = []

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

// The relay's secrets. The vault's role assignment for the identity is part of this module, and the
// Function App module uses this module's outputs, so ARM creates the role before the app settings
// that reference the vault.
module vault 'modules/keyvault.bicep' = {
  name: 'keyvault-${resourceToken}'
  params: {
    name: 'kv-wallarm-${take(resourceToken, 12)}'
    location: location
    tags: tags
    relayPrincipalId: identity.outputs.principalId
    webhookSharedSecret: webhookSharedSecret
    wallarmApiToken: wallarmApiToken
    webhookSecretName: vaultSecretNames.webhook
    wallarmTokenName: vaultSecretNames.wallarm
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

var vaultSecretNames = {
  webhook: 'webhook-shared-secret'
  wallarm: 'wallarm-api-token'
}
// Key Vault references (versionless: the app follows the latest version of each secret).
var webhookSecretSetting = empty(webhookSharedSecret) ? (empty(webhookSecretKeyVaultUri) ? '' : '@Microsoft.KeyVault(SecretUri=${webhookSecretKeyVaultUri})') : '@Microsoft.KeyVault(SecretUri=${vault.outputs.uri}secrets/${vaultSecretNames.webhook})'
var wallarmApiTokenSetting = empty(wallarmApiToken) ? '' : '@Microsoft.KeyVault(SecretUri=${vault.outputs.uri}secrets/${vaultSecretNames.wallarm})'

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
    relaySettings: {
      LOGS_INGESTION_ENDPOINT: dcr.outputs.logsIngestionEndpoint
      LOGS_DCR_IMMUTABLE_ID: dcr.outputs.immutableId
      LOGS_STREAM_NAME: schema.stream
      LOGS_INGESTION_AUDIENCE: ingestionAudience
      LOGS_WORKSPACE_ID: workspace.outputs.customerId
      WEBHOOK_SHARED_SECRET: webhookSecretSetting
      WALLARM_API_TOKEN: wallarmApiTokenSetting
      MAX_BODY_BYTES: maxBodyBytes
      WEBHOOK_DELIVERY_BUDGET_SECONDS: webhookDeliveryBudgetSeconds
      WEBHOOK_READ_TIMEOUT_SECONDS: webhookReadTimeoutSeconds
      WORKER_READ_TIMEOUT_SECONDS: workerReadTimeoutSeconds
      RETRY_WORKER_RUN_SECONDS: retryWorkerRunSeconds
      RETRY_POLL_SECONDS: retryPollSeconds
      RETRY_CLAIM_LEASE_SECONDS: retryClaimLeaseSeconds
      AUTO_DISABLE_FAILURE_RATIO: autoDisableFailureRatio
      AUTO_DISABLE_WINDOW_HOURS: autoDisableWindowHours
      AUTO_DISABLE_MIN_ATTEMPTS: autoDisableMinAttempts
      AUTO_DISABLE_GRACE_MINUTES: autoDisableGraceMinutes
      RECOVERY_PROBE_SECONDS: recoveryProbeSeconds
      LANDED_CHECK_DELAY_SECONDS: landedCheckDelaySeconds
      DEDUP_WINDOW_HOURS: dedupWindowHours
      LEDGER_RETENTION_DAYS: ledgerRetentionDays
      COUNTER_RETENTION_DAYS: counterRetentionDays
      RECONCILE_DELAY_MINUTES: reconcileDelayMinutes
      RECONCILE_OVERLAP_MINUTES: reconcileOverlapMinutes
      RECONCILE_CATCH_UP_HOURS: reconcileCatchUpHours
      RECONCILE_MAX_RANGE_HOURS: reconcileMaxRangeHours
      RECONCILE_MAX_AGE_DAYS: reconcileMaxAgeDays
      RECONCILE_CONFIRM_MINUTES: reconcileConfirmMinutes
      WATCHDOG_QUIET_HOURS: watchdogQuietHours
      SELECT_HITS: selectHits
      SELECT_HIT_HEADERS: selectHitHeaders
      SELECT_SYSTEM_EVENTS: selectSystemEvents
      SELECT_VULNERABILITIES: selectVulnerabilities
      SELECT_HOURLY_COUNT: selectHourlyCount
      WATCHDOG_CHECK_INTEGRATION: watchdogCheckIntegration
      WATCHDOG_REENABLE: watchdogReenable
      RELAY_TABLE_PREFIX: relayTablePrefix
      WEBHOOK_SECRET_HEADER: webhookSecretHeader
      ALLOWED_SOURCE_NETWORKS: allowedSourceNetworks
      SELECT_SECURITY_ISSUE_RISKS: selectSecurityIssueRisks
      RETRY_SCHEDULE: retrySchedule
      WALLARM_API_CLOUD: wallarmApiCloud
      WALLARM_API_URL: wallarmApiUrl
      WALLARM_CLIENT_ID: wallarmClientId
      LOGS_QUERY_ENDPOINT: logsQueryEndpoint
      WALLARM_INTEGRATION_URL: wallarmIntegrationUrl
      RETRY_WORKER_SCHEDULE: retryWorkerSchedule
      HOURLY_COUNT_SCHEDULE: hourlyCountSchedule
      COMPLETENESS_SCHEDULE: completenessSchedule
    }
  }
  dependsOn: [
    // Explicit as well as through the outputs: the vault role exists before any reference is read.
    vault
  ]
}

// Reconciliation and the landed check before a doubtful resend read the table (README
// "Completeness", "When a duplicate row is possible"): Log Analytics Reader on the workspace.
module readerRole 'modules/reader-role.bicep' = {
  name: 'reader-role-${resourceToken}'
  scope: resourceGroup(effectiveWorkspaceRg)
  params: {
    workspaceName: workspace.outputs.name
    relayPrincipalId: identity.outputs.principalId
  }
}

// Monitoring Metrics Publisher on each tenant's DCR in this subscription (any resource group); the
// role is assigned at the DCR's resource group, so the deployment needs that right there.
var relaySubscriptionId = toLower(subscription().subscriptionId)
var sameSubscriptionDestinations = filter(destinations, d => toLower(split(d.dcrResourceId, '/')[2]) == relaySubscriptionId)
module destinationRoles 'modules/destination-role.bicep' = [for destination in sameSubscriptionDestinations: {
  name: 'dest-role-${destination.name}-${take(resourceToken, 13)}'
  scope: resourceGroup(split(destination.dcrResourceId, '/')[2], split(destination.dcrResourceId, '/')[4])
  params: {
    tenantName: destination.name
    dcrResourceId: destination.dcrResourceId
    dceResourceId: contains(destination, 'dceResourceId') ? destination.dceResourceId : ''
    relayPrincipalId: identity.outputs.principalId
  }
}]

// Every other DCR (another subscription, or another Entra tenant through Azure Lighthouse): the exact
// role assignment to make, one line each, for someone with rights there (docs/TENANTS.md, roles).
var destinationRoleCommandLines = [for destination in destinations: (toLower(split(destination.dcrResourceId, '/')[2]) == relaySubscriptionId) ? '' : 'az role assignment create --assignee-object-id ${identity.outputs.principalId} --assignee-principal-type ServicePrincipal --role "Monitoring Metrics Publisher" --scope ${destination.dcrResourceId}\n']

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
    destinationDcrs: [for destination in sameSubscriptionDestinations: {
      name: destination.name
      dcrResourceId: destination.dcrResourceId
    }]
  }
}

module healthWorkbook 'modules/workbook.bicep' = {
  name: 'workbook-${resourceToken}'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.id
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
// LOGS_WORKSPACE_ID is the workspace GUID (customerId) the relay queries; the resource id is separate.
output LOGS_WORKSPACE_ID string = workspace.outputs.customerId
output LOG_ANALYTICS_WORKSPACE_RESOURCE_ID string = workspace.outputs.id
output AZURE_VAULT_NAME string = vault.outputs.name
output AZURE_LOCATION string = location
// Tenants' destinations (docs/TENANTS.md): which DCRs got the role from this deployment, and the
// role assignments still to make for the others (empty when there are none).
output DESTINATION_ROLES array = [for destination in destinations: {
  name: destination.name
  dcrResourceId: destination.dcrResourceId
  roleAssignedByDeployment: toLower(split(destination.dcrResourceId, '/')[2]) == relaySubscriptionId
}]
output DESTINATION_ROLE_COMMANDS string = join(destinationRoleCommandLines, '')
output RELAY_PRINCIPAL_ID string = identity.outputs.principalId
