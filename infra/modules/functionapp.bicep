// The relay: a Python 3.11 Function App on Flex Consumption, running as the user-assigned
// identity. Host storage and the deployment package use the identity (no keys); telemetry uses
// Entra auth; secrets (webhook shared secret, Wallarm API token) are Key Vault references read
// with the identity (keyVaultReferenceIdentity).
param name string
param planName string
param location string
param tags object = {}
@description('azd service name (tag azd-service-name), must match azure.yaml.')
param serviceName string = 'relay'
param identityId string
param identityClientId string
param storageAccountName string
param storageBlobEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param appInsightsName string
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
@description('Webhooks one instance serves at once (Flex default for Python: 1). 16 from bench/sizing.py, docs/SOAK.md.')
param httpPerInstanceConcurrency int = 16
@minValue(0)
@maxValue(20)
@description('Always-ready instances for the HTTP trigger group (the webhook): 0 = scale from zero (cold starts of a few seconds); each instance bills its memory around the clock (see infra/README.md).')
param alwaysReadyHttp int = 0
@description('Application settings the relay reads (LOGS_*, WEBHOOK_*, schedules...); secrets only as Key Vault references.')
param relaySettings object

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  #checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption is region-dependent and raises the always-ready cost; the retry queue (ZRS storage) absorbs a zone outage.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  #checkov:skip=CKV_AZURE_222:Wallarm Cloud posts over the internet from its published IPs; the app filters sources with ALLOWED_SOURCE_NETWORKS and authenticates with the function key plus the shared-secret header.
  #checkov:skip=CKV_AZURE_17:Wallarm sends no client certificate (it supports only custom headers and a custom CA), so mutual TLS cannot be required.
  #checkov:skip=CKV_AZURE_213:Flex Consumption does not support the App Service health check (healthCheckPath); relay health is covered by the Azure Monitor alerts in alerts.bicep.
  #checkov:skip=CKV_AZURE_78:Flex Consumption rejects siteConfig.ftpsState (error 51021); FTP is disabled by the basicPublishingCredentialsPolicies 'ftp' child below.
  #checkov:skip=CKV_AZURE_18:Flex Consumption does not accept siteConfig.http20Enabled; the front end's HTTP version is platform-managed there.
  #checkov:skip=CKV_AZURE_67:Same as CKV_AZURE_18: http20Enabled is not a Flex Consumption site setting.
  #checkov:skip=CKV_AZURE_212:Flex Consumption scales out on demand (maximumInstanceCount); instance-count failover is not applicable.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    // Flex Consumption rejects site config it does not support (ARM error 51021, enforced per
    // region): ftpsState, remote debugging, HTTP/2 and the SCM TLS floor are platform-managed
    // there. FTP and SCM basic auth are off through basicPublishingCredentialsPolicies below.
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
        alwaysReady: alwaysReadyHttp > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttp
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource basicPublishingFtp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource basicPublishingScm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

var hostSettings = {
  // Host storage by identity: accountName + credential + clientId, no connection string.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Telemetry with Entra auth (the component has local auth disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The identity azure-identity must use (a user-assigned identity needs its client id).
  AZURE_CLIENT_ID: identityClientId
  RELAY_STORAGE_TABLE_ENDPOINT: storageTableEndpoint
  // The Python worker's thread pool must admit what perInstanceConcurrency sends (docs/SOAK.md).
  PYTHON_THREADPOOL_THREAD_COUNT: string(httpPerInstanceConcurrency)
}

// checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource;
// this one is the 'appsettings' child (key/value pairs only), so those checks do not apply here.
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  #checkov:skip=CKV_AZURE_13:Not site config: appsettings holds key/values only (authentication is the function key + shared secret, see site).
  #checkov:skip=CKV_AZURE_63:Not site config: HTTP logging is not available on Flex Consumption; requests are traced in Application Insights.
  #checkov:skip=CKV_AZURE_65:Not site config: detailed error pages are irrelevant for a JSON webhook endpoint.
  #checkov:skip=CKV_AZURE_66:Not site config: failed request tracing is not available on Flex Consumption; failures are in Application Insights.
  #checkov:skip=CKV_AZURE_80:Not site config: the app runs Python 3.11, not .NET.
  #checkov:skip=CKV_AZURE_88:Not site config: Flex Consumption uses a blob deployment container, not Azure Files.
  #checkov:skip=CKV_AZURE_222:Not site config: public access is governed on the site resource (see its justification).
  parent: site
  name: 'appsettings'
  properties: union(relaySettings, hostSettings)
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
