#!/bin/sh
# azd postprovision hook: print what to enter in Wallarm's webhook integration (README, Connect Wallarm).
# Prints commands that read the key and the secret, never their values: hook output ends up in CI logs.
header="${WEBHOOK_SECRET_HEADER:-X-Wallarm-Relay-Secret}"
cat <<TEXT

Connect Wallarm: Console -> Integrations -> Webhooks (recommended: the key and the secret in custom headers)
  URL                          ${WEBHOOK_URL:-<WEBHOOK_URL output>}
  custom header x-functions-key   value of: az functionapp function keys list -g ${AZURE_RESOURCE_GROUP:-<rg>} -n ${AZURE_FUNCTION_APP_NAME:-<app>} --function-name wallarm_webhook --query default -o tsv
  custom header ${header}   value of: azd env get-value WEBHOOK_SHARED_SECRET
  method POST, format JSON array or NDJSON; then press "Test integration".
Alternative: ?code=<function key> at the end of the URL also works, but every log that records URLs then holds the key.
The function key exists once the code is deployed (azd deploy). Role assignments take up to ~30 minutes to
propagate: until then the probe may report ingestion 403 or keyvault_reference_unresolved (README, Troubleshooting).
TEXT
if [ -z "${WEBHOOK_SHARED_SECRET:-}" ]; then
  echo "No shared secret is set. Recommended: azd env set WEBHOOK_SHARED_SECRET \"\$(openssl rand -hex 32)\" && azd provision"
fi
