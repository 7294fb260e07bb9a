"""Referral's admin, one module per area (imported here so the admin site registers them).
Read-mostly: the only writes are distributor decisions, through the same services as the API."""

from referral.admin import attribution, distributors, fraud, leads, links  # noqa: F401
