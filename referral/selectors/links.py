"""Reads of share links: a distributor's own links, the public lookup by short code (cached per
process for a few seconds, because every link open starts with it), link targets, and the
click → order funnel.

The funnel is aggregated in SQL (``GROUP BY``) from the raw rows, ``Click`` and
``Attribution``, over a date range: not from the links' flushed counters, which lag by up to one
flush interval and cannot be cut by date. Per link or per UTM source:

- ``exposures``: non-bot opens (``counted`` + ``duplicate`` clicks of kind ``link``);
- ``clicks``: ``counted`` clicks (of any kind: an exclusive code's checkout is a counted ``code``
  click on the code's hidden link, so code-driven orders have their click too);
- ``orders``: attributions to this distributor at level 1 through the link (``Attribution.link``
  and ``Attribution.distributor``), by ``paid_at``;
- ``gmv``: their ``goods_amount - refunded_amount`` (fen);
- ``conversion_bps``: ``orders * 10000 // clicks`` (0 without clicks; may exceed 10000 when
  orders come from bindings made before the range).

A distributor sees counts only, never who clicked or bought."""

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from core.errors import InvalidInput, NotFound
from core.link_targets import LinkTarget, resolve_target
from referral.error_codes import LinkErrorCode
from referral.models import Attribution, Click, Distributor, ShareLink, TrackingOptOut
from shop.models import Customer

CACHE_SECONDS = 5.0  # how stale a cached link or target may be (is_active, title, live)
CACHE_MAX_ENTRIES = 10_000
SHORT_CODE_MAX_LENGTH = 16
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
SHOP_KIND = "shop"

GroupBy = Literal["link", "utm_source"]


class _TtlCache:
    """A tiny per-process cache: values live ``CACHE_SECONDS``; full, it starts over."""

    def __init__(self) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + CACHE_SECONDS, value)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_links = _TtlCache()
_targets = _TtlCache()


def link_cache_clear() -> None:
    """Forget every cached link and target of this process (tests; after bulk changes)."""
    _links.clear()
    _targets.clear()


def link_cache_forget(short_code: str) -> None:
    _links.forget(short_code)


# --- targets --------------------------------------------------------------------------------
def share_path_of(path: str, short_code: str) -> str:
    """The mini-program path a share opens: the target's path with ``scene=<short code>``."""
    return f"{path}{'&' if '?' in path else '?'}scene={short_code}"


def link_target(*, kind: str, ident: int | None, title: str = "") -> LinkTarget:
    """The link's target as its registry resolves it now (cached briefly). A target that is gone
    (deleted, back to draft, unregistered kind) still answers, not live, with the shop's home
    page as its path, so a customer opening an old link lands somewhere."""
    key = (kind, ident)
    cached = _targets.get(key)
    if cached is not None:
        return cached
    target = resolve_target(kind, ident)
    if target is None:
        home = resolve_target(SHOP_KIND, None) if kind != SHOP_KIND else None
        target = LinkTarget(
            kind=kind, id=ident, path=home.path if home else "", title=title, live=False
        )
    _targets.put(key, target)
    return target


def link_target_of(link: ShareLink) -> LinkTarget:
    return link_target(kind=link.target_kind, ident=link.target_id, title=link.title)


# --- the public lookup by short code --------------------------------------------------------
@dataclass(frozen=True)
class OpenableLink:
    """What opening a link needs, read in one query and cached ``CACHE_SECONDS``."""

    link_id: int
    distributor_id: int
    distributor_name: str
    short_code: str
    is_active: bool
    target: LinkTarget
    share_path: str


def _is_short_code(text: str) -> bool:
    return 0 < len(text) <= SHORT_CODE_MAX_LENGTH and text.isascii() and text.isalnum()


def link_for_open(short_code: str) -> OpenableLink | None:
    """The link with this short code (active or not), or None."""
    if not _is_short_code(short_code):
        return None
    cached = _links.get(short_code)
    if cached is not None:
        return cached
    row = (
        ShareLink.objects.filter(short_code=short_code)
        .values_list(
            "pk",
            "distributor_id",
            "distributor__display_name",
            "target_kind",
            "target_id",
            "title",
            "is_active",
        )
        .first()
    )
    if row is None:
        return None
    link_id, distributor_id, name, kind, ident, title, is_active = row
    target = link_target(kind=kind, ident=ident, title=title)
    found = OpenableLink(
        link_id=link_id,
        distributor_id=distributor_id,
        distributor_name=name,
        short_code=short_code,
        is_active=is_active,
        target=target,
        share_path=share_path_of(target.path, short_code),
    )
    _links.put(short_code, found)
    return found


def link_public_by_code(*, short_code: str) -> ShareLink:
    """An active link by its short code, for its public QR images; else 404."""
    link = (
        ShareLink.objects.filter(short_code=short_code, is_active=True).first()
        if _is_short_code(short_code)
        else None
    )
    if link is None:
        raise NotFound("There is no active link with this code.", code=LinkErrorCode.LINK_NOT_FOUND)
    return link


# --- a distributor's own links --------------------------------------------------------------
def links_of(*, distributor: Distributor) -> QuerySet[ShareLink]:
    """The links a distributor made, newest first (an exclusive code's hidden link is not one of
    them: it belongs to the code)."""
    return ShareLink.objects.filter(distributor=distributor, is_code_link=False).order_by("-id")


def link_of(*, distributor: Distributor, link_id: int) -> ShareLink:
    """One of the distributor's own links; anyone else's is indistinguishable from none."""
    link = links_of(distributor=distributor).filter(pk=link_id).first()
    if link is None:
        raise NotFound("This link does not exist.", code=LinkErrorCode.LINK_NOT_FOUND)
    return link


def tracking_opted_out(*, customer: Customer) -> bool:
    """Whether the customer asked not to be tracked."""
    return TrackingOptOut.objects.filter(customer=customer).exists()


# --- the funnel -----------------------------------------------------------------------------
@dataclass
class FunnelRow:
    utm_source: str
    link_id: int | None = None
    short_code: str | None = None
    title: str | None = None
    target_kind: str | None = None
    is_active: bool | None = None
    is_code_link: bool | None = None
    exposures: int = 0
    clicks: int = 0
    orders: int = 0
    gmv: int = 0

    @property
    def conversion_bps(self) -> int:
        return self.orders * 10000 // self.clicks if self.clicks else 0


@dataclass
class Funnel:
    group_by: GroupBy
    since: datetime
    until: datetime
    rows: list[FunnelRow] = field(default_factory=list)
    totals: FunnelRow = field(default_factory=lambda: FunnelRow(utm_source=""))


def _range(
    since: datetime | None, until: datetime | None, now: datetime | None
) -> tuple[datetime, datetime]:
    until = until or now or timezone.now()
    since = since or until - DEFAULT_RANGE
    if since >= until:
        raise InvalidInput(
            "`since` must be before `until`.",
            code=LinkErrorCode.STATS_RANGE_INVALID,
            details={"field": "since"},
        )
    if until - since > MAX_RANGE:
        raise InvalidInput(
            f"The range may span at most {MAX_RANGE.days} days.",
            code=LinkErrorCode.STATS_RANGE_INVALID,
            details={"field": "since", "max_days": MAX_RANGE.days},
        )
    return since, until


def link_funnel(
    *,
    distributor: Distributor,
    group_by: GroupBy = "link",
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Funnel:
    """The distributor's funnel over ``[since, until)`` (default: the 30 days up to now), per
    link (newest link first) or per UTM source (alphabetical; ``""`` for none): two aggregate
    queries and one for the links' names. Only rows with a click or an order in the range."""
    since, until = _range(since, until, now)
    key = "link_id" if group_by == "link" else "link__utm_source"
    clicks = (
        Click.objects.filter(distributor=distributor, occurred_at__gte=since, occurred_at__lt=until)
        .values(key)
        .annotate(
            exposures=Count(
                "id",
                filter=Q(
                    kind=Click.Kind.LINK,
                    status__in=[Click.Status.COUNTED, Click.Status.DUPLICATE],
                ),
            ),
            clicks=Count("id", filter=Q(status=Click.Status.COUNTED)),
        )
        .order_by()
    )
    orders = (
        Attribution.objects.filter(
            distributor=distributor,
            link__distributor=distributor,
            paid_at__gte=since,
            paid_at__lt=until,
        )
        .values(key)
        .annotate(orders=Count("id"), gmv=Sum(F("goods_amount") - F("refunded_amount")))
        .order_by()
    )
    rows: dict[Any, FunnelRow] = {}

    def row_for(value: Any) -> FunnelRow:
        if value not in rows:
            rows[value] = (
                FunnelRow(utm_source="", link_id=value)
                if group_by == "link"
                else FunnelRow(utm_source=value)
            )
        return rows[value]

    for found in clicks:
        row = row_for(found[key])
        row.exposures, row.clicks = found["exposures"], found["clicks"]
    for found in orders:
        row = row_for(found[key])
        row.orders, row.gmv = found["orders"], int(found["gmv"] or 0)
    if group_by == "link" and rows:
        for link in ShareLink.objects.filter(distributor=distributor, pk__in=list(rows)).only(
            "short_code", "title", "target_kind", "utm_source", "is_active", "is_code_link"
        ):
            row = rows[link.pk]
            row.short_code, row.title = link.short_code, link.title
            row.target_kind, row.utm_source = link.target_kind, link.utm_source
            row.is_active, row.is_code_link = link.is_active, link.is_code_link
    ordered = (
        sorted(rows.values(), key=lambda r: -(r.link_id or 0))
        if group_by == "link"
        else sorted(rows.values(), key=lambda r: r.utm_source)
    )
    totals = FunnelRow(
        utm_source="",
        exposures=sum(r.exposures for r in ordered),
        clicks=sum(r.clicks for r in ordered),
        orders=sum(r.orders for r in ordered),
        gmv=sum(r.gmv for r in ordered),
    )
    return Funnel(group_by=group_by, since=since, until=until, rows=ordered, totals=totals)
