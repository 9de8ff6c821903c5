"""wallarm-sentinel-relay: Wallarm webhooks into Microsoft Sentinel via the Logs Ingestion API."""
