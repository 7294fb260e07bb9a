"""The shop's HTTP API: one router composed of one sub-router per area."""

from ninja import Router

from shop.api import auth, catalog, coupons, customers, flash, orders, payments

router = Router()
router.add_router("/auth", auth.router)
router.add_router("/", catalog.router)
router.add_router("/", customers.router)
router.add_router("/", orders.router)
router.add_router("/", payments.router)
router.add_router("/", coupons.router)
router.add_router("/", flash.router)
