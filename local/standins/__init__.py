"""Stand-ins that speak Azure's wire protocols on 127.0.0.1, for tests, the local runner and benches.

* ``logs_ingestion.LogsIngestionStandIn``: Logs Ingestion API (HTTPS) with fault injection.
* ``identity.ManagedIdentityStandIn`` / ``identity.EntraIdStandIn``: token endpoints for the real
  ``azure.identity`` credentials (Entra: any tenant; client secret, certificate or federated
  assertion); ``identity.TokenIssuer`` is shared so issued tokens verify.
* ``key_vault.KeyVaultStandIn``: Key Vault secrets (HTTPS) with an access map and fault injection.
* ``azurite.Azurite``: the Table Storage emulator (npm ``azurite``), started or reused.
* ``tls``: the per-process CA; clients pass ``connection_verify=tls.ca_bundle_path()``.

Import the submodules directly; this package keeps no import-time side effects.
"""
