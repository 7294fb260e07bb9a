"""Shop admin, one module per area. Actions that change data call the same services as the API."""

from shop.admin import catalog, customers, orders, payments, reconciliation  # noqa: F401
