"""Completeness: what Wallarm's cloud holds that the table lacks (reconcile, watchdog)."""
