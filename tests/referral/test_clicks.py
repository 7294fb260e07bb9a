"""Link opens: de-duplication windows (time travel), bot filtering, opt-out, device clicks
claimed at login; the counters flush. On PostgreSQL."""

import random
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from core.errors import ApplicationError
from referral.error_codes import LinkErrorCode
from referral.models import Click, ClickGate, ShareLink, TrackingOptOut
from referral.selectors import links as selectors
from referral.services.clicks import clicks_flush, link_open, tracking_opt_out_set
from referral.services.links import link_create, link_deactivate
from tests.factories import ProductFactory
from tests.referral.factories import make_distributor
from tests.referral.test_visitors import MINI_PROGRAM_ANDROID, MINI_PROGRAM_IOS
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db

IP = "a" * 64
CURL = "curl/8.4.0"
WECHAT_PREVIEW = "Mozilla/5.0 (compatible; WeChat-Preview/1.0)"


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    selectors.link_cache_clear()
    yield
    selectors.link_cache_clear()


@pytest.fixture
def link():
    distributor = make_distributor(display_name="Aunt Li")
    product = ProductFactory(title="Tomatoes")
    return link_create(distributor=distributor, target_kind="product", target_id=product.pk)


def _open(link, *, customer=None, device=None, ip=IP, ua=MINI_PROGRAM_IOS, **kwargs):
    return link_open(
        short_code=link.short_code if isinstance(link, ShareLink) else link,
        customer=customer,
        device_id=device,
        ip_hash=ip,
        user_agent=ua,
        **kwargs,
    )


def _statuses(link) -> list[str]:
    return list(Click.objects.filter(link=link).order_by("id").values_list("status", flat=True))


# --- what an open answers and records ---------------------------------------------------------
def test_an_open_records_a_counted_click_and_answers_where_to_land(link):
    device = uuid.uuid4()

    opened = _open(link, device=device)

    click = Click.objects.get()
    assert (opened.recorded, opened.status) == (True, "counted")
    assert opened.link_id == link.pk and opened.distributor_name == "Aunt Li"
    assert opened.target.kind == "product" and opened.target.title == "Tomatoes"
    assert opened.target.live is True
    assert opened.share_path == f"pages/product/detail?id={link.target_id}&scene={link.short_code}"
    assert (click.link_id, click.distributor_id, click.kind) == (
        link.pk,
        link.distributor_id,
        "link",
    )
    assert (click.status, click.device_id, click.customer_id) == ("counted", device, None)
    assert (click.ip_hash, click.user_agent, click.visitor_key) == (
        IP,
        MINI_PROGRAM_IOS,
        f"d:{device}",
    )
    assert click.flushed is False
    assert ClickGate.objects.get().visitor_key == f"d:{device}"


def test_an_unknown_or_malformed_code_is_not_found_and_records_nothing(link):
    for code in ["NOPE2345", "", " " + link.short_code, "A" * 17, "AB\x00CD", "ab cd", "ÄBCD"]:
        with pytest.raises(ApplicationError) as caught:
            _open(code)
        assert caught.value.code == LinkErrorCode.LINK_NOT_FOUND and caught.value.status == 404
    assert not Click.objects.exists()


def test_an_inactive_link_leads_to_its_target_but_records_nothing(link):
    _open(link, device=uuid.uuid4())  # cached as active
    link_deactivate(distributor=link.distributor, link_id=link.pk)

    opened = _open(link, device=uuid.uuid4())

    assert (opened.recorded, opened.status) == (False, None)
    assert opened.target.title == "Tomatoes" and opened.share_path.endswith(link.short_code)
    assert Click.objects.count() == 1


def test_the_user_agent_is_kept_storable_and_at_most_400_characters(link):
    _open(link, device=uuid.uuid4(), ua="Mozilla/5.0 \x00" + "x" * 500)

    click = Click.objects.get()
    assert click.user_agent == ("Mozilla/5.0 " + "x" * 500)[:400]


# --- de-duplication ---------------------------------------------------------------------------
def test_the_same_visitor_counts_once_per_window(link):
    device = uuid.uuid4()
    start = timezone.now()

    at = [start, start + timedelta(minutes=59), start + timedelta(minutes=61)]
    statuses = [_open(link, device=device, now=moment).status for moment in at]
    later = _open(link, device=device, now=start + timedelta(minutes=61 + 30)).status
    much_later = _open(link, device=device, now=start + timedelta(minutes=61 + 60)).status

    assert statuses == ["counted", "duplicate", "counted"]
    assert (later, much_later) == ("duplicate", "counted")
    assert ClickGate.objects.get().counted_at == start + timedelta(minutes=121)


def test_the_window_is_the_setting_and_its_edge_counts(link, settings):
    settings.REFERRAL_CLICK_DEDUPE_WINDOW = timedelta(minutes=10)
    device = uuid.uuid4()
    start = timezone.now()

    first = _open(link, device=device, now=start).status
    just_before = _open(link, device=device, now=start + timedelta(minutes=10, seconds=-1)).status
    at_the_edge = _open(link, device=device, now=start + timedelta(minutes=10)).status

    assert (first, just_before, at_the_edge) == ("counted", "duplicate", "counted")


def test_time_travel_through_the_window_with_the_clock(link):
    device = uuid.uuid4()

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        first = _open(link, device=device).status
        traveller.shift(timedelta(minutes=59))
        second = _open(link, device=device).status
        traveller.shift(timedelta(minutes=2))
        third = _open(link, device=device).status

    assert (first, second, third) == ("counted", "duplicate", "counted")


def test_other_visitors_and_other_links_count_on_their_own(link):
    device = uuid.uuid4()
    other_link = link_create(distributor=link.distributor, target_kind="shop", target_id=None)

    statuses = [
        _open(link, device=device).status,
        _open(link, device=uuid.uuid4()).status,
        _open(other_link, device=device).status,
        _open(link, device=device).status,
    ]

    assert statuses == ["counted", "counted", "counted", "duplicate"]


def test_a_customers_key_wins_over_the_device_key(link):
    customer = QuickCustomerFactory()

    on_phone = _open(link, customer=customer, device=uuid.uuid4()).status
    on_tablet = _open(link, customer=customer, device=uuid.uuid4()).status
    other_customer_same_device = _open(link, customer=QuickCustomerFactory()).status

    assert (on_phone, on_tablet, other_customer_same_device) == ("counted", "duplicate", "counted")
    assert Click.objects.filter(customer=customer).values_list("visitor_key", flat=True).distinct()[
        0
    ] == (f"c:{customer.pk}")


def test_without_device_or_customer_the_address_and_user_agent_are_the_visitor(link):
    statuses = [
        _open(link, ip="a" * 64, ua=MINI_PROGRAM_IOS).status,
        _open(link, ip="a" * 64, ua=MINI_PROGRAM_IOS).status,
        _open(link, ip="a" * 64, ua=MINI_PROGRAM_ANDROID).status,
        _open(link, ip="b" * 64, ua=MINI_PROGRAM_IOS).status,
    ]

    assert statuses == ["counted", "duplicate", "counted", "counted"]
    assert all(
        key.startswith("h:") and len(key) == 66
        for key in Click.objects.values_list("visitor_key", flat=True)
    )


# --- bots -------------------------------------------------------------------------------------
@pytest.mark.parametrize("user_agent", [CURL, WECHAT_PREVIEW, "", "Googlebot/2.1"])
def test_bots_are_recorded_as_filtered_and_never_pass_the_gate(link, user_agent):
    device = uuid.uuid4()

    bot = _open(link, device=device, ua=user_agent)
    human = _open(link, device=device)

    assert (bot.recorded, bot.status) == (True, "bot")
    assert human.status == "counted"
    assert _statuses(link) == ["bot", "counted"]
    assert ClickGate.objects.count() == 1


# --- opting out -------------------------------------------------------------------------------
def test_an_open_that_says_opted_out_records_nothing(link):
    opened = _open(link, device=uuid.uuid4(), opted_out=True)

    assert (opened.recorded, opened.status) == (False, None)
    assert opened.target.title == "Tomatoes"
    assert not Click.objects.exists() and not ClickGate.objects.exists()


def test_a_customer_who_opted_out_is_never_recorded_until_they_opt_back_in(link):
    customer = QuickCustomerFactory()
    device = uuid.uuid4()
    _open(link, device=device)  # anonymous, before login

    tracking_opt_out_set(customer=customer, opted_out=True)
    tracking_opt_out_set(customer=customer, opted_out=True)  # idempotent
    while_out = _open(link, customer=customer, device=device)
    tracking_opt_out_set(customer=customer, opted_out=False)
    back_in = _open(link, customer=customer, device=device)

    assert (while_out.recorded, back_in.recorded) == (False, True)
    assert TrackingOptOut.objects.count() == 0
    assert Click.objects.count() == 2


def test_an_opted_out_customer_does_not_claim_the_devices_clicks(link):
    customer = QuickCustomerFactory()
    device = uuid.uuid4()
    _open(link, device=device)
    tracking_opt_out_set(customer=customer, opted_out=True)

    _open(link, customer=customer, device=device)

    assert Click.objects.get().customer_id is None


# --- login claims the device's anonymous clicks -----------------------------------------------
def test_logging_in_claims_the_devices_anonymous_clicks(link):
    customer, someone_else = QuickCustomerFactory(), QuickCustomerFactory()
    device, other_device = uuid.uuid4(), uuid.uuid4()
    other_link = link_create(distributor=make_distributor(), target_kind="shop", target_id=None)
    _open(link, device=device)
    _open(other_link, device=device)
    _open(link, device=other_device)
    _open(link, customer=someone_else, device=uuid.uuid4())

    after_login = _open(other_link, customer=customer, device=device)

    assert after_login.status == "counted"  # a new visitor key: the customer's
    assert Click.objects.filter(customer=customer, device_id=device).count() == 3
    assert Click.objects.filter(device_id=device, customer__isnull=True).count() == 0
    assert Click.objects.filter(device_id=other_device, customer__isnull=True).count() == 1
    assert Click.objects.filter(customer=someone_else).count() == 1


def test_a_claimed_click_keeps_its_first_customer(link):
    first, second = QuickCustomerFactory(), QuickCustomerFactory()
    device = uuid.uuid4()
    _open(link, device=device)
    _open(link, customer=first, device=device)

    _open(link, customer=second, device=device)

    assert Click.objects.filter(customer=first).count() == 2
    assert Click.objects.filter(customer=second).count() == 1


def test_a_claim_without_a_device_changes_nothing(link):
    _open(link, device=uuid.uuid4())

    _open(link, customer=QuickCustomerFactory())

    assert Click.objects.filter(customer__isnull=True).count() == 1


# --- flushing the counters --------------------------------------------------------------------
def _burst(links, n, seed=7):
    """``n`` opens over ``links``: new visitors, repeats and bots mixed."""
    rng = random.Random(seed)
    devices = [uuid.uuid4() for _ in range(n // 3)]
    for _ in range(n):
        roll = rng.random()
        ua = CURL if roll < 0.15 else MINI_PROGRAM_IOS
        device = rng.choice(devices) if roll < 0.5 else uuid.uuid4()
        _open(rng.choice(links), device=device, ua=ua)


def _expected(link):
    rows = Click.objects.filter(link=link)
    return rows.filter(status="counted").count(), rows.exclude(status="counted").count()


def test_flushed_counters_equal_the_raw_rows_and_a_second_flush_adds_nothing():
    distributor = make_distributor()
    links = [
        link_create(distributor=distributor, target_kind="shop", target_id=None) for _ in range(4)
    ]
    _burst(links, 120)
    statuses = set(Click.objects.values_list("status", flat=True))

    flushed = clicks_flush()
    first = {link.pk: link for link in ShareLink.objects.filter(pk__in=[x.pk for x in links])}
    again = clicks_flush()

    assert statuses == {"counted", "duplicate", "bot"}
    assert flushed == Click.objects.count() == 120
    assert again == 0
    assert not Click.objects.filter(flushed=False).exists()
    for link in links:
        fresh = ShareLink.objects.get(pk=link.pk)
        assert (fresh.clicks, fresh.filtered_clicks) == _expected(link)
        assert (fresh.clicks, fresh.filtered_clicks) == (
            first[link.pk].clicks,
            first[link.pk].filtered_clicks,
        )
        assert fresh.flushed_at is not None
    assert sum(ShareLink.objects.values_list("clicks", flat=True)) > 0


def test_a_later_flush_adds_only_the_new_clicks(link):
    _open(link, device=uuid.uuid4())
    _open(link, device=uuid.uuid4(), ua=CURL)
    assert clicks_flush() == 2

    _open(link, device=uuid.uuid4())
    assert clicks_flush() == 1

    fresh = ShareLink.objects.get(pk=link.pk)
    assert (fresh.clicks, fresh.filtered_clicks) == (2, 1)


def test_flushing_nothing_answers_zero_and_changes_no_link(link):
    assert clicks_flush() == 0
    assert ShareLink.objects.get(pk=link.pk).flushed_at is None


def test_small_batches_flush_everything():
    link = link_create(distributor=make_distributor(), target_kind="shop", target_id=None)
    for n in range(23):
        _open(link, device=uuid.uuid4(), ua=CURL if n % 4 == 0 else MINI_PROGRAM_IOS)

    assert clicks_flush(batch=4) == 23
    fresh = ShareLink.objects.get(pk=link.pk)
    assert (fresh.clicks, fresh.filtered_clicks) == (17, 6)


def test_a_batch_exactly_full_loops_once_more():
    distributor = make_distributor()
    link = link_create(distributor=distributor, target_kind="shop", target_id=None)
    for _ in range(10):
        _open(link, device=uuid.uuid4())

    assert clicks_flush(batch=5) == 10
    assert ShareLink.objects.get(pk=link.pk).clicks == 10
