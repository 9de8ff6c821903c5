"""Several tenants (issue 22): tenants as data, their secrets and credentials, isolated per tenant."""
