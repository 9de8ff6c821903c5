// The custom table WallarmSentinel_CL. Its columns are passed in from main.bicep, which reads
// them from ../shared/schema.json: the same file the Python mapping and the DCR stream use.
param workspaceName string
@description('Table name, from schema.json ("table").')
param tableName string
@description('Columns [{name, type, description}], from schema.json ("columns").')
param columns array
@minValue(4)
@maxValue(730)
param retentionInDays int = 90
@minValue(4)
@maxValue(4383)
param totalRetentionInDays int = 365

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2025-02-01' = {
  parent: workspace
  name: tableName
  properties: {
    plan: 'Analytics'
    retentionInDays: retentionInDays
    totalRetentionInDays: totalRetentionInDays
    schema: {
      name: tableName
      description: 'Wallarm events relayed by wallarm-sentinel-relay (Logs Ingestion API).'
      columns: columns
    }
  }
}

output name string = table.name
