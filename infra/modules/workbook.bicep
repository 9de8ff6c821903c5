// The relay's health workbook on its Application Insights component (infra/workbooks/relay-health.json):
// events, Logs Ingestion API statuses, backlog age, failure ratio and disable/recover events, each
// per tenant, with a Tenant parameter (All, or the values of the custom dimension `tenant`).
param location string
param tags object = {}
@description('Resource id of the relay\'s Application Insights component (the workbook\'s source).')
param appInsightsId string
param displayName string = 'Wallarm relay health'

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsightsId, 'wallarm-relay-health-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: loadTextContent('../workbooks/relay-health.json')
  }
}

output id string = workbook.id
