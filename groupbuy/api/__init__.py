"""Group-buy's HTTP API: one router per flow, mounted together at the API root."""

from ninja import Router

from groupbuy.api.bargains import router as bargains_router
from groupbuy.api.chains import router as chains_router
from groupbuy.api.groups import router as groups_router

router = Router()
router.add_router("", groups_router)
router.add_router("", bargains_router)
router.add_router("", chains_router)
