"""Several tenants: tenants as data, their secrets and credentials, their services and a fair drain."""
