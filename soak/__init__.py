"""Soak harness (issue 24): relay instances, a Wallarm-like sender, seeded faults, exact books."""
