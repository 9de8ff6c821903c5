"""Delivery: rows reach the Logs Ingestion API now, or are queued and retried."""
