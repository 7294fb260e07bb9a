"""Shop admin, one module per area. Actions that change data call the same services as the API."""

from shop.admin import (  # noqa: F401
    catalog,
    customers,
    orders,
    payments,
    promotions,
    promotions_flash,
    reconciliation,
)
