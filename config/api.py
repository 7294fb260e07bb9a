"""One NinjaAPI at /api/v1/, one router per app, one error envelope."""

from core.api import auth_router, notifications_router, staff_router
from core.http import Api, install_error_handlers

api = Api(
    title="Community group-buy & distribution API",
    version="1.0.0",
    description=(
        "Backend for WeChat-style mini-programs: catalog, orders and payments, group-buys, "
        "bargains, distribution and incentives. Amounts are integer minor units (fen); rates are "
        "basis points. Every error has the shape "
        '`{"error": {"code", "message", "details"}}`. POSTs that create money, seats or stock '
        "holds accept an `Idempotency-Key` header."
    ),
    urls_namespace="api-v1",
)
install_error_handlers(api)

api.add_router("/auth", auth_router)
api.add_router("/notifications", notifications_router)
api.add_router("/staff", staff_router)

from shop.api import router as shop_router  # noqa: E402

api.add_router("/", shop_router)

from groupbuy.api import router as groupbuy_router  # noqa: E402

api.add_router("/", groupbuy_router)

from referral.api import router as referral_router  # noqa: E402

api.add_router("/", referral_router)
