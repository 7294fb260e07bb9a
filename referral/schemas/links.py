"""HTTP shapes of share links, link opens, the tracking opt-out and the funnel
(referral/api/links.py). Inputs are strict ``BodyIn`` bodies; money is integer fen, rates basis
points. Response names start with ``Referral`` (unique across the API)."""

from datetime import datetime
from typing import Any, Literal

from django.urls import reverse
from ninja import Field, Schema

from core.schemas import BodyIn, DateTimeIn, Id, StrictBool
from referral.models import ShareLink
from referral.selectors import links as selectors
from referral.services import links as services

MAX_ID = 2**63 - 1
SHORT_CODE = r"^[A-Za-z0-9]{1,16}$"
UTM_VALUE = r"^[A-Za-z0-9._~-]*$"
TARGET_KIND = r"^[a-z][a-z_]*$"

ClickStatus = Literal["counted", "duplicate", "bot"]
FunnelGroupBy = Literal["link", "utm_source"]


def _utm(name: str) -> Any:
    return Field(
        "",
        max_length=services.UTM_MAX_LENGTH,
        pattern=UTM_VALUE,
        description=f"`{name}`: at most 64 of A-Z a-z 0-9 . _ ~ - (empty: none).",
    )


# --- links ----------------------------------------------------------------------------------
class ReferralLinkCreateIn(BodyIn):
    target_kind: str = Field(
        ...,
        min_length=1,
        max_length=24,
        pattern=TARGET_KIND,
        description="What the link opens: `product`, `group_campaign`, `bargain_campaign`, "
        "`chain_post`, `flash_session`, `lead_form` or `shop`.",
    )
    target_id: Id | None = Field(
        None, ge=1, le=MAX_ID, description="The target's id; null for `shop` and `lead_form`."
    )
    utm_source: str = _utm("utm_source")
    utm_medium: str = _utm("utm_medium")
    utm_campaign: str = _utm("utm_campaign")
    utm_content: str = _utm("utm_content")


class ReferralLinkTargetOut(Schema):
    kind: str
    id: int | None
    path: str = Field(..., description="The mini-program page, with its own query.")
    title: str
    live: bool = Field(..., description="Whether it can be bought / joined now.")


class ReferralLinkShareOut(Schema):
    path: str = Field(..., description="The target's mini-program page.")
    scene: str = Field(..., description="The mini-program `scene`: the link's short code.")
    share_path: str = Field(..., description="`path` with `scene=<short code>` added.")
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str


class ReferralLinkOut(Schema):
    id: int
    short_code: str
    target_kind: str
    target_id: int | None
    title: str = Field(..., description="The target's title when the link was made.")
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str
    is_active: bool
    clicks: int = Field(..., description="Counted clicks, as of the last flush (`flushed_at`).")
    filtered_clicks: int = Field(..., description="Duplicate and bot clicks, as of the last flush.")
    flushed_at: datetime | None
    created_at: datetime
    target: ReferralLinkTargetOut = Field(..., description="The target as it is now.")
    share: ReferralLinkShareOut
    qr_svg_url: str = Field(..., description="Public QR code (SVG) of `share.share_path`.")
    qr_png_url: str = Field(..., description="Public QR code (PNG) of `share.share_path`.")

    @staticmethod
    def resolve_target(obj: ShareLink) -> object:
        return selectors.link_target_of(obj)

    @staticmethod
    def resolve_share(obj: ShareLink) -> object:
        return services.link_share(obj)

    @staticmethod
    def resolve_qr_svg_url(obj: ShareLink) -> str:
        return reverse("api-v1:referral_link_qr_svg", kwargs={"short_code": obj.short_code})

    @staticmethod
    def resolve_qr_png_url(obj: ShareLink) -> str:
        return reverse("api-v1:referral_link_qr_png", kwargs={"short_code": obj.short_code})


# --- opens and tracking ---------------------------------------------------------------------
class ReferralOpenIn(BodyIn):
    code: str = Field(
        ...,
        min_length=1,
        max_length=16,
        pattern=SHORT_CODE,
        description="The short code (the `scene`) the mini-program was opened with.",
    )
    opted_out: StrictBool = Field(
        False, description="The visitor opted out of tracking: nothing is recorded."
    )


class ReferralOpenOut(Schema):
    recorded: bool = Field(..., description="Whether a click row was recorded.")
    status: ClickStatus | None = Field(
        ...,
        description="The recorded click's status: `counted`, `duplicate` (same visitor within "
        "the de-duplication window) or `bot`; null when nothing was recorded.",
    )
    link_id: int
    distributor_name: str = Field(..., description="The sharer's public display name.")
    target: ReferralLinkTargetOut
    share_path: str = Field(..., description="Where to land: the target's path with its scene.")


class ReferralTrackingIn(BodyIn):
    opted_out: StrictBool = Field(..., description="true: never record my link opens.")


class ReferralTrackingOut(Schema):
    opted_out: bool


# --- the funnel -----------------------------------------------------------------------------
class ReferralLinkStatsQuery(Schema):
    group_by: FunnelGroupBy = Field("link", description="One row per link or per UTM source.")
    since: DateTimeIn | None = Field(None, description="From (inclusive); default until - 30 d.")
    until: DateTimeIn | None = Field(None, description="To (exclusive); default now.")


class ReferralLinkFunnelTotalsOut(Schema):
    exposures: int = Field(..., description="Non-bot opens (counted + duplicate).")
    clicks: int = Field(..., description="Counted clicks (one per visitor per window).")
    orders: int = Field(..., description="Orders attributed to me through the link(s).")
    gmv: int = Field(..., description="Those orders' goods amount less refunds, fen.")
    conversion_bps: int = Field(..., description="orders * 10000 // clicks (0 without clicks).")


class ReferralLinkFunnelRowOut(ReferralLinkFunnelTotalsOut):
    utm_source: str = Field(..., description='The link\'s UTM source (`""`: none).')
    link_id: int | None = Field(..., description="null when grouped by UTM source.")
    short_code: str | None
    title: str | None
    target_kind: str | None
    is_active: bool | None
    is_code_link: bool | None = Field(
        ..., description="The hidden link of an exclusive code (its checkouts are its clicks)."
    )


class ReferralLinkStatsOut(Schema):
    group_by: FunnelGroupBy
    since: datetime
    until: datetime
    rows: list[ReferralLinkFunnelRowOut]
    totals: ReferralLinkFunnelTotalsOut
