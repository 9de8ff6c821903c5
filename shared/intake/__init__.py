"""Intake: a Wallarm request becomes rows (parse, select, map) and is deduplicated."""
