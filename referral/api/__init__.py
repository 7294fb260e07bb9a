"""Referral's HTTP API: one router per area, mounted together at the API root (shopper and
distributor paths under ``/referral/``, operators' under ``/staff/referral/``)."""

from ninja import Router

from referral.api.attribution import router as attribution_router
from referral.api.codes import router as codes_router
from referral.api.distributors import router as distributors_router
from referral.api.fraud import router as fraud_router
from referral.api.leads import router as leads_router
from referral.api.links import router as links_router

router = Router()
router.add_router("", distributors_router)
router.add_router("", links_router)
router.add_router("", attribution_router)
router.add_router("", codes_router)
router.add_router("", leads_router)
router.add_router("", fraud_router)
