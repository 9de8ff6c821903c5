# azd postprovision hook (Windows): print what to enter in Wallarm's webhook integration (README, Connect Wallarm).
# Prints commands that read the key and the secret, never their values: hook output ends up in CI logs.
$header = if ($env:WEBHOOK_SECRET_HEADER) { $env:WEBHOOK_SECRET_HEADER } else { 'X-Wallarm-Relay-Secret' }
Write-Host ""
Write-Host "Connect Wallarm: Console -> Integrations -> Webhooks (recommended: the key and the secret in custom headers)"
Write-Host "  URL                          $($env:WEBHOOK_URL)"
Write-Host "  custom header x-functions-key   value of: az functionapp function keys list -g $($env:AZURE_RESOURCE_GROUP) -n $($env:AZURE_FUNCTION_APP_NAME) --function-name wallarm_webhook --query default -o tsv"
Write-Host "  custom header $header   value of: azd env get-value WEBHOOK_SHARED_SECRET"
Write-Host "  method POST, format JSON array or NDJSON; then press 'Test integration'."
Write-Host "Alternative: ?code=<function key> at the end of the URL also works, but every log that records URLs then holds the key."
Write-Host "The function key exists once the code is deployed (azd deploy). Role assignments take up to ~30 minutes to"
Write-Host "propagate: until then the probe may report ingestion 403 or keyvault_reference_unresolved (README, Troubleshooting)."
if (-not $env:WEBHOOK_SHARED_SECRET) {
  Write-Host 'No shared secret is set. Recommended: azd env set WEBHOOK_SHARED_SECRET <random> ; azd provision'
}
