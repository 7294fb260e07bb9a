"""Group-buy's admin, one module per flow (imported here so the admin site registers them)."""

from groupbuy.admin import bargains, chains, groups  # noqa: F401
