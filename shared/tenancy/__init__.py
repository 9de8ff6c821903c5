"""Tenants as data (issue 22): names, specs and their validation, and the tenant operations' adapters.

The layer sits between completeness and ops: it may use the settings (a tenant's settings are
validated by the same ``load_settings`` as the default's) but nothing from ``shared.ops``.
"""
