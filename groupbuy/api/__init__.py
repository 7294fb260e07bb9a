"""Group-buy's HTTP API: one router per flow, mounted together at the API root."""

from ninja import Router

from groupbuy.api.groups import router as groups_router

router = Router()
router.add_router("", groups_router)
