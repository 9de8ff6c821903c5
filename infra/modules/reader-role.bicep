// Log Analytics Reader on the workspace for the relay's identity: reconciliation (README
// "Completeness") asks the workspace which Wallarm hits WallarmSentinel_CL already holds, and the
// retry worker asks which rows of an upload that timed out already landed (landed check).
// Deployed in the workspace's resource group (main.bicep sets the scope).
param workspaceName string
param relayPrincipalId string

// Built-in role "Log Analytics Reader" (same id in every tenant).
var logAnalyticsReaderRoleId = '73c42c96-874c-492b-b04d-ab87d138a893'

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource relayReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, relayPrincipalId, logAnalyticsReaderRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReaderRoleId)
    principalId: relayPrincipalId
    principalType: 'ServicePrincipal'
  }
}
