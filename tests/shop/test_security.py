"""Client IPs from trusted proxies only, login limits per IP and per account in separate shopper
and staff buckets, and provider details kept away from shoppers."""

import pytest
import stripe
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.utils import timezone

from core.clientip import client_ip
from core.models import AuthSession
from shop.models import Payment
from shop.services.payments import payment_start
from tests.core.utils import assert_error
from tests.factories import StaffFactory
from tests.shop.factories_payments import payable_order
from tests.shop.stripe_fakes import use_fake_stripe

pytestmark = pytest.mark.django_db

WECHAT = "/api/v1/auth/wechat"
STAFF = "/api/v1/auth/staff"


@pytest.fixture(autouse=True)
def _one_window(time_machine):
    time_machine.move_to(timezone.now(), tick=False)  # every request in one rate window


def _wechat(anon, code: str, peer: str = "127.0.0.1", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return anon.post(WECHAT, json={"code": code}, **extra)


def _staff(anon, username: str, peer: str = "127.0.0.1"):
    return anon.post(STAFF, json={"username": username, "password": "wrong"}, REMOTE_ADDR=peer)


# --- which address is the client's ---------------------------------------------------------
def _ip(settings, proxies, peer, forwarded=None) -> str:
    settings.TRUSTED_PROXIES = proxies
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


@pytest.mark.parametrize(
    ("proxies", "peer", "forwarded", "expected"),
    [
        # no trusted proxy: the header is never read
        ([], "198.51.100.9", "203.0.113.7", "198.51.100.9"),
        # an untrusted peer cannot name another address
        (["10.0.0.0/8"], "198.51.100.9", "203.0.113.7", "198.51.100.9"),
        # our proxy: the right-most entry that is not one of our proxies
        (["10.0.0.0/8"], "10.0.0.5", "203.0.113.7", "203.0.113.7"),
        (["10.0.0.0/8"], "10.0.0.5", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        (["10.0.0.0/8", "192.0.2.1"], "10.0.0.5", "6.6.6.6, 203.0.113.7, 192.0.2.1", "203.0.113.7"),
        # only proxies in the chain: the left-most of them
        (["10.0.0.0/8"], "10.0.0.5", "10.1.1.1", "10.1.1.1"),
        # garbage where a proxy's entry should be: stop at the nearest proxy
        (["10.0.0.0/8"], "10.0.0.5", "6.6.6.6, not-an-ip", "10.0.0.5"),
        (["10.0.0.0/8"], "10.0.0.5", None, "10.0.0.5"),
        (["10.0.0.0/8"], "10.0.0.5", "203.0.113.7:4711", "203.0.113.7"),
        (["2001:db8::/32"], "2001:db8::1", "[2001:db8:ffff::1]:443, 2400:cb00::1", "2400:cb00::1"),
        ([], "::ffff:198.51.100.9", None, "198.51.100.9"),
        ([], "", None, "0.0.0.0"),
    ],
)
def test_client_ip(settings, proxies, peer, forwarded, expected):
    assert _ip(settings, proxies, peer, forwarded) == expected


# --- X-Forwarded-For and the limits ----------------------------------------------------------
def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(settings, anon):
    settings.SHOPPER_LOGIN_IP_RATE = "3/m"
    assert settings.TRUSTED_PROXIES == []

    answers = [_wechat(anon, f"c{i}", forwarded=f"203.0.113.{i}") for i in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert_error(answers[3], 429, "rate_limited")
    assert AuthSession.objects.count() == 3


def test_a_trusted_proxys_forwarded_for_is_honoured(settings, anon):
    settings.SHOPPER_LOGIN_IP_RATE = "3/m"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = "10.0.0.5"

    same_client = [_wechat(anon, f"c{i}", proxy, "203.0.113.7") for i in range(3)]
    # the client puts a fake address in front: our proxy's entry still names it
    forged = _wechat(anon, "c3", proxy, "6.6.6.6, 203.0.113.7")
    neighbour = _wechat(anon, "c4", proxy, "203.0.113.8")

    assert [a.status_code for a in same_client] == [200, 200, 200]
    assert_error(forged, 429, "rate_limited")
    assert neighbour.status_code == 200  # another client behind the same proxy
    assert AuthSession.objects.count() == 4


def test_bad_staff_logins_do_not_lock_shoppers_out_of_the_same_ip(settings, anon):
    settings.STAFF_LOGIN_IP_RATE = "2/m"
    settings.STAFF_LOGIN_ACCOUNT_RATE = "100/m"
    staff = [_staff(anon, f"guess{i}").status_code for i in range(3)]

    shopper = _wechat(anon, "shopper-code")

    assert staff == [401, 401, 429]
    assert shopper.status_code == 200
    assert AuthSession.objects.count() == 1


def test_bad_shopper_logins_do_not_lock_staff_out_of_the_same_ip(settings, anon):
    settings.SHOPPER_LOGIN_IP_RATE = "2/m"
    operator = StaffFactory()
    shoppers = [_wechat(anon, f"c{i}").status_code for i in range(3)]

    staff = anon.post(STAFF, json={"username": operator.username, "password": "pw-for-tests-123"})

    assert shoppers == [200, 200, 429]
    assert staff.status_code == 200


def test_staff_logins_are_limited_per_username_across_ips(settings, anon):
    settings.STAFF_LOGIN_ACCOUNT_RATE = "2/m"
    peers = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]

    same_account = [_staff(anon, "Admin", peer).status_code for peer in peers]
    # case or spaces do not make it another account
    variant = _staff(anon, " admin ", "198.51.100.4")
    other_account = _staff(anon, "someone-else", peers[-1])

    assert same_account == [401, 401, 429]
    assert_error(variant, 429, "rate_limited")
    assert other_account.status_code == 401


def test_staff_login_ip_limit_counts_every_username(settings, anon):
    settings.STAFF_LOGIN_IP_RATE = "3/m"

    answers = [_staff(anon, f"user{i}").status_code for i in range(4)]

    assert answers == [401, 401, 401, 429]


def test_shopper_logins_are_limited_per_account_across_ips(settings, anon):
    settings.SHOPPER_LOGIN_ACCOUNT_RATE = "2/m"

    same_code = [_wechat(anon, "one-code", f"198.51.100.{i}").status_code for i in range(3)]
    other = _wechat(anon, "another-code", "198.51.100.9")

    assert same_code == [200, 200, 429]
    assert other.status_code == 200
    assert AuthSession.objects.count() == 3


def test_shopper_account_limit_counts_the_openid_whatever_the_code(settings, anon, monkeypatch):
    # real WeChat: every wx.login code is new, the openid behind them is the account
    from shop import wechat
    from shop.api import auth

    settings.SHOPPER_LOGIN_ACCOUNT_RATE = "2/m"
    monkeypatch.setattr(
        auth, "code_to_identity", lambda code: wechat.WechatIdentity("o_same", None)
    )

    answers = [_wechat(anon, f"fresh-{i}", f"198.51.100.{i}").status_code for i in range(3)]

    assert answers == [200, 200, 429]
    assert AuthSession.objects.count() == 2


def test_default_login_rates(settings):
    assert (settings.SHOPPER_LOGIN_IP_RATE, settings.SHOPPER_LOGIN_ACCOUNT_RATE) == (
        "60/m",
        "10/m",
    )
    assert (settings.STAFF_LOGIN_IP_RATE, settings.STAFF_LOGIN_ACCOUNT_RATE) == ("20/m", "5/m")
    assert settings.RATELIMIT_IP_META_KEY == "core.clientip.client_ip"


def test_refresh_limit_uses_the_trusted_client_ip(settings, anon):
    settings.REFRESH_RATE = "2/m"
    answers = [
        anon.post(
            "/api/v1/auth/refresh",
            json={"refresh_token": "unknown"},
            REMOTE_ADDR="198.51.100.1",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(3)
    ]

    assert answers == [401, 401, 429]


# --- provider details stay with operators ----------------------------------------------------
def test_a_provider_failure_shows_shoppers_a_stable_text_and_operators_the_detail(
    settings, monkeypatch, customer, shopper, staff
):
    fake = use_fake_stripe(settings, monkeypatch)
    order = payable_order(customer)
    fake.failures.append(
        stripe.APIConnectionError(
            "Unexpected error communicating with Stripe at api.stripe.com: Traceback ...",
            should_retry=False,
        )
    )

    response = shopper.post(f"/api/v1/orders/{order.pk}/pay")

    assert_error(response, 502, "payment_provider_error")
    payment = Payment.objects.get()
    assert payment.failure_message == "The payment service could not be reached; please try again."
    assert "api.stripe.com" in payment.provider_detail
    listed = shopper.get(f"/api/v1/orders/{order.pk}/payments").content.decode()
    assert "The payment service could not be reached" in listed
    assert "api.stripe.com" not in listed and "Traceback" not in listed
    admin = Client()
    admin.force_login(get_user_model().objects.get(pk=staff.pk))
    page = admin.get(f"/admin/shop/payment/{payment.pk}/change/").content.decode()
    assert "api.stripe.com" in page


def test_a_declined_payment_shows_our_text_for_the_decline_code(
    settings, monkeypatch, customer, shopper, django_capture_on_commit_callbacks
):
    from tests.shop.stripe_fakes import event, intent_obj, post_event

    use_fake_stripe(settings, monkeypatch)
    payment = payment_start(order_id=payable_order(customer).pk, customer=customer)
    obj = intent_obj(payment, status="requires_payment_method", error="Do not honor (node-7)")
    obj["last_payment_error"]["decline_code"] = "insufficient_funds"

    with django_capture_on_commit_callbacks(execute=True):
        post_event(Client(), event("evt_f", "payment_intent.payment_failed", obj))

    body = shopper.get(f"/api/v1/payments/{payment.pk}").json()
    assert (body["status"], body["failure_message"]) == (
        "failed",
        "Your card has insufficient funds.",
    )
    payment.refresh_from_db()
    assert payment.provider_detail == "insufficient_funds: Do not honor (node-7)"
