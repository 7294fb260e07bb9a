"""Share links (making, limits, deactivating, the share payload) and the click → order funnel,
on PostgreSQL."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from core.errors import ApplicationError
from referral.error_codes import DistributorErrorCode, LinkErrorCode
from referral.models import Attribution, AttributionRule, Click, Distributor, ShareLink
from referral.selectors import links as selectors
from referral.selectors.links import link_funnel
from referral.services import links as services
from referral.services.links import link_create, link_deactivate, link_share
from shop.models import Product
from tests.factories import ProductFactory
from tests.referral.factories import make_distributor
from tests.shop.factories_orders import QuickCustomerFactory, paid

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    selectors.link_cache_clear()
    yield
    selectors.link_cache_clear()


def _error(call, **kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call(**kwargs)
    return caught.value


def _product_link(distributor, **utm) -> ShareLink:
    product = ProductFactory()
    return link_create(distributor=distributor, target_kind="product", target_id=product.pk, **utm)


# --- making links -----------------------------------------------------------------------------
def test_a_product_link_has_a_short_code_the_title_and_a_share_path_with_its_scene():
    distributor = make_distributor()
    product = ProductFactory(title="Organic tomatoes")

    link = link_create(
        distributor=distributor,
        target_kind="product",
        target_id=product.pk,
        utm_source="wechat_group",
        utm_medium="share",
        utm_campaign="summer.2025",
        utm_content="a~b-c",
    )
    share = link_share(link)

    assert re.fullmatch(r"[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{8}", link.short_code)
    assert (link.target_kind, link.target_id, link.title) == (
        "product",
        product.pk,
        "Organic tomatoes",
    )
    assert link.distributor_id == distributor.pk and link.is_active
    assert share.path == f"pages/product/detail?id={product.pk}"
    assert share.scene == link.short_code
    assert share.share_path == f"pages/product/detail?id={product.pk}&scene={link.short_code}"
    assert (share.utm_source, share.utm_medium, share.utm_campaign, share.utm_content) == (
        "wechat_group",
        "share",
        "summer.2025",
        "a~b-c",
    )


def test_a_shop_link_takes_no_id_and_its_share_path_starts_the_query():
    link = link_create(distributor=make_distributor(), target_kind="shop", target_id=None)

    assert link.target_id is None and link.title == "Shop"
    assert link_share(link).share_path == f"pages/index/index?scene={link.short_code}"


def test_short_codes_are_drawn_fresh_for_every_link():
    distributor = make_distributor()

    codes = {_product_link(distributor).short_code for _ in range(20)}

    assert len(codes) == 20


@pytest.mark.parametrize(
    "status",
    [Distributor.Status.APPLIED, Distributor.Status.SUSPENDED, Distributor.Status.REJECTED],
)
def test_only_an_active_distributor_makes_links(status):
    distributor = make_distributor(status=status)

    error = _error(link_create, distributor=distributor, target_kind="shop", target_id=None)

    assert error.code == DistributorErrorCode.DISTRIBUTOR_NOT_ACTIVE and error.status == 409
    assert not ShareLink.objects.exists()


def test_an_unknown_kind_or_a_missing_or_draft_target_is_not_found():
    distributor = make_distributor()
    draft = ProductFactory(status=Product.Status.DRAFT)

    unknown_kind = _error(link_create, distributor=distributor, target_kind="moon", target_id=1)
    missing = _error(link_create, distributor=distributor, target_kind="product", target_id=99999)
    hidden = _error(link_create, distributor=distributor, target_kind="product", target_id=draft.pk)

    for error in (unknown_kind, missing, hidden):
        assert error.code == LinkErrorCode.LINK_TARGET_NOT_FOUND and error.status == 404
    assert not ShareLink.objects.exists()


def test_an_id_for_the_shop_or_none_for_a_product_is_invalid():
    distributor = make_distributor()

    errors = [
        _error(link_create, distributor=distributor, target_kind=kind, target_id=ident)
        for kind, ident in [("shop", 1), ("lead_form", 1), ("product", None)]
    ]

    for error in errors:
        assert error.code == LinkErrorCode.LINK_INVALID and error.status == 422
        assert error.details == {"field": "target_id"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("utm_source", "x" * 65),
        ("utm_medium", "two words"),
        ("utm_campaign", "a/b"),
        ("utm_content", "é"),
        ("utm_source", "a&scene=OTHER"),
    ],
)
def test_utm_values_are_short_and_path_safe(field, value):
    error = _error(
        link_create,
        distributor=make_distributor(),
        target_kind="shop",
        target_id=None,
        **{field: value},
    )

    assert error.code == LinkErrorCode.LINK_INVALID and error.details == {"field": field}


def test_a_64_character_utm_value_is_fine():
    link = link_create(
        distributor=make_distributor(), target_kind="shop", target_id=None, utm_source="a" * 64
    )

    assert link.utm_source == "a" * 64


def test_active_links_are_capped_per_distributor(monkeypatch):
    monkeypatch.setattr(services, "MAX_ACTIVE_LINKS", 3)
    distributor = make_distributor()
    links = [_product_link(distributor) for _ in range(3)]

    error = _error(link_create, distributor=distributor, target_kind="shop", target_id=None)
    link_deactivate(distributor=distributor, link_id=links[0].pk)
    again = link_create(distributor=distributor, target_kind="shop", target_id=None)
    other = link_create(distributor=make_distributor(), target_kind="shop", target_id=None)

    assert error.code == LinkErrorCode.LINK_LIMIT_REACHED and error.status == 409
    assert error.details == {"limit": 3}
    assert again.is_active and other.is_active
    assert ShareLink.objects.filter(distributor=distributor, is_active=True).count() == 3


def test_an_exclusive_codes_hidden_link_does_not_count_towards_the_cap(monkeypatch):
    monkeypatch.setattr(services, "MAX_ACTIVE_LINKS", 1)
    distributor = make_distributor()
    ShareLink.objects.create(
        distributor=distributor, short_code="CODELINK1", target_kind="shop", is_code_link=True
    )

    link = link_create(distributor=distributor, target_kind="shop", target_id=None)

    assert link.is_active


def test_a_short_code_clash_draws_again(monkeypatch):
    distributor = make_distributor()
    taken = _product_link(distributor).short_code
    draws = iter([taken, taken, "FRESH234"])
    monkeypatch.setattr(services, "short_code_new", lambda: next(draws))

    link = link_create(distributor=distributor, target_kind="shop", target_id=None)

    assert link.short_code == "FRESH234"
    assert ShareLink.objects.filter(short_code=taken).count() == 1


def test_endless_clashes_give_up_instead_of_looping(monkeypatch):
    distributor = make_distributor()
    taken = _product_link(distributor).short_code
    monkeypatch.setattr(services, "short_code_new", lambda: taken)

    with pytest.raises(RuntimeError):
        link_create(distributor=distributor, target_kind="shop", target_id=None)


def test_another_integrity_error_is_not_taken_for_a_clash(monkeypatch):
    distributor = make_distributor()

    with pytest.raises(IntegrityError):
        services._insert_with_fresh_code(distributor_id=distributor.pk, target_kind=None)


# --- deactivating -----------------------------------------------------------------------------
def test_deactivating_is_idempotent_and_scoped_to_my_links():
    mine, theirs = make_distributor(), make_distributor()
    link = _product_link(mine)
    their_link = _product_link(theirs)

    first = link_deactivate(distributor=mine, link_id=link.pk)
    second = link_deactivate(distributor=mine, link_id=link.pk)
    error = _error(link_deactivate, distributor=mine, link_id=their_link.pk)

    assert first.is_active is False and second.is_active is False
    assert error.code == LinkErrorCode.LINK_NOT_FOUND and error.status == 404
    assert ShareLink.objects.get(pk=their_link.pk).is_active is True


def test_an_exclusive_codes_hidden_link_is_not_deactivated_here():
    distributor = make_distributor()
    hidden = ShareLink.objects.create(
        distributor=distributor, short_code="CODELINK2", target_kind="shop", is_code_link=True
    )

    error = _error(link_deactivate, distributor=distributor, link_id=hidden.pk)

    assert error.code == LinkErrorCode.LINK_NOT_FOUND
    assert ShareLink.objects.get(pk=hidden.pk).is_active is True


def test_a_link_whose_target_is_gone_still_leads_to_the_shop():
    distributor = make_distributor()
    product = ProductFactory(title="Gone soon")
    link = link_create(distributor=distributor, target_kind="product", target_id=product.pk)
    Product.objects.filter(pk=product.pk).update(status=Product.Status.DRAFT)
    selectors.link_cache_clear()

    target = selectors.link_target_of(link)

    assert (target.path, target.title, target.live) == ("pages/index/index", "Gone soon", False)
    assert link_share(link).share_path == f"pages/index/index?scene={link.short_code}"


# --- the funnel -------------------------------------------------------------------------------
def _click(link, status, *, at, kind=Click.Kind.LINK):
    return Click.objects.create(
        link=link,
        distributor_id=link.distributor_id,
        kind=kind,
        status=status,
        occurred_at=at,
        visitor_key=f"d:{uuid.uuid4()}",
    )


def _rule() -> AttributionRule:
    return AttributionRule.objects.get_or_create(
        version=1,
        defaults={"model": AttributionRule.Model.LAST_TOUCH, "effective_from": timezone.now()},
    )[0]


def _attribution(link, *, goods, refunded=0, at, distributor=None):
    order = paid(QuickCustomerFactory())
    rule = _rule()
    return Attribution.objects.create(
        order=order,
        customer=order.customer,
        distributor=distributor or link.distributor,
        rule=rule,
        rule_version=rule.version,
        touch=Attribution.Touch.CLICK,
        link=link,
        source=order.source,
        goods_amount=goods,
        refunded_amount=refunded,
        paid_at=at,
    )


@pytest.fixture
def funnel_world():
    now = timezone.now()
    me, other = make_distributor(), make_distributor()
    wechat = _product_link(me, utm_source="wechat")
    moments = _product_link(me, utm_source="moments")
    wechat_two = link_create(
        distributor=me, target_kind="shop", target_id=None, utm_source="wechat"
    )
    code_link = ShareLink.objects.create(
        distributor=me, short_code="CODELINK3", target_kind="shop", is_code_link=True
    )
    theirs = _product_link(other, utm_source="wechat")
    recent, old = now - timedelta(days=2), now - timedelta(days=31)
    S = Click.Status
    for status in [S.COUNTED] * 4 + [S.DUPLICATE] * 2 + [S.BOT] * 3:
        _click(wechat, status, at=recent)
    _click(wechat, S.COUNTED, at=old)  # before the range
    for status in [S.COUNTED, S.DUPLICATE]:
        _click(moments, status, at=recent)
    for status in [S.COUNTED] * 2 + [S.BOT]:
        _click(wechat_two, status, at=recent)
    _click(code_link, S.COUNTED, at=recent, kind=Click.Kind.CODE)
    _click(theirs, S.COUNTED, at=recent)
    _attribution(wechat, goods=1990, at=recent)
    _attribution(wechat, goods=3000, refunded=1000, at=recent)
    _attribution(wechat, goods=5000, at=old)  # before the range
    _attribution(moments, goods=990, at=recent)
    _attribution(code_link, goods=500, at=recent)
    _attribution(theirs, goods=7000, at=recent)
    # attributed to someone else through my link, or to me through theirs (neither happens
    # today): not in my funnel
    _attribution(wechat_two, goods=8000, at=recent, distributor=other)
    _attribution(theirs, goods=6000, at=recent, distributor=me)
    return {
        "now": now,
        "me": me,
        "wechat": wechat,
        "moments": moments,
        "wechat_two": wechat_two,
        "code_link": code_link,
    }


def _numbers(row):
    return (row.exposures, row.clicks, row.orders, row.gmv, row.conversion_bps)


def test_the_funnel_per_link_counts_raw_rows_in_the_last_30_days(funnel_world):
    w = funnel_world

    funnel = link_funnel(distributor=w["me"], now=w["now"])

    rows = {row.link_id: row for row in funnel.rows}
    assert [row.link_id for row in funnel.rows] == sorted(rows, reverse=True)
    assert set(rows) == {w[k].pk for k in ("wechat", "moments", "wechat_two", "code_link")}
    assert _numbers(rows[w["wechat"].pk]) == (6, 4, 2, 1990 + 2000, 5000)
    assert _numbers(rows[w["moments"].pk]) == (2, 1, 1, 990, 10000)
    assert _numbers(rows[w["wechat_two"].pk]) == (2, 2, 0, 0, 0)
    assert _numbers(rows[w["code_link"].pk]) == (0, 1, 1, 500, 10000)
    assert rows[w["code_link"].pk].is_code_link is True
    assert rows[w["wechat"].pk].short_code == w["wechat"].short_code
    assert rows[w["wechat"].pk].utm_source == "wechat"
    assert _numbers(funnel.totals) == (10, 8, 4, 5480, 5000)
    assert funnel.until == w["now"] and funnel.since == w["now"] - timedelta(days=30)


def test_the_funnel_per_utm_source_sums_its_links(funnel_world):
    w = funnel_world

    funnel = link_funnel(distributor=w["me"], group_by="utm_source", now=w["now"])

    rows = {row.utm_source: row for row in funnel.rows}
    assert [row.utm_source for row in funnel.rows] == ["", "moments", "wechat"]
    assert _numbers(rows["wechat"]) == (8, 6, 2, 3990, 3333)
    assert _numbers(rows["moments"]) == (2, 1, 1, 990, 10000)
    assert _numbers(rows[""]) == (0, 1, 1, 500, 10000)
    assert all(row.link_id is None for row in funnel.rows)


def test_the_funnel_range_is_chosen_by_the_caller(funnel_world):
    w = funnel_world

    funnel = link_funnel(
        distributor=w["me"],
        since=w["now"] - timedelta(days=40),
        until=w["now"] - timedelta(days=20),
    )

    rows = {row.link_id: row for row in funnel.rows}
    assert set(rows) == {w["wechat"].pk}
    assert _numbers(rows[w["wechat"].pk]) == (1, 1, 1, 5000, 10000)


def test_a_distributor_with_nothing_has_an_empty_funnel(funnel_world):
    funnel = link_funnel(distributor=make_distributor())

    assert funnel.rows == [] and _numbers(funnel.totals) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(("since_days", "until_days"), [(0, 0), (1, 2), (400, 0)])
def test_an_empty_reversed_or_too_long_range_is_refused(since_days, until_days):
    now = timezone.now()

    error = _error(
        link_funnel,
        distributor=make_distributor(),
        since=now - timedelta(days=since_days),
        until=now - timedelta(days=until_days),
    )

    assert error.code == LinkErrorCode.STATS_RANGE_INVALID and error.status == 422
