"""Stripe webhooks applied to our books, exactly: which payment or refund an event is matched to
(by id, else by the ids we put in its metadata), what it writes (status, refs, timeline rows,
discrepancies), whether the event counts as processed, and what is logged for operators. Written
to kill the mutants `make mutate` left alive in shop/services/payments.py."""

import pytest

from core.models import Notification
from shop.models import (
    Order,
    OrderEvent,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    WebhookEvent,
)
from shop.services.payments import (
    payment_start,
    payment_succeeded,
    refund_send,
    stripe_webhook_handle,
)
from shop.services.refunds import refund_issue
from tests.factories import StaffFactory
from tests.shop.factories_orders import paid
from tests.shop.factories_payments import PaymentFactory, payable_order
from tests.shop.stripe_fakes import (
    FakeStripe,
    charge_refunded_obj,
    event,
    intent_obj,
    refund_obj,
    sign,
    use_fake_stripe,
)

pytestmark = pytest.mark.django_db

REFUSED = "The payment service refused this refund; our staff will follow up."


@pytest.fixture
def fake_stripe(settings, monkeypatch) -> FakeStripe:
    return use_fake_stripe(settings, monkeypatch)


def deliver(event_id: str, type_: str, obj: dict) -> WebhookEvent:
    payload = event(event_id, type_, obj)
    return stripe_webhook_handle(payload=payload, signature=sign(payload))


def processed(stored: WebhookEvent) -> bool:
    return WebhookEvent.objects.get(pk=stored.pk).processed_at is not None


def logged(caplog) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "shop.services.payments"
    ]


def started(customer) -> Payment:
    """A pending Stripe payment of a new 3980 CNY order (its intent id recorded)."""
    order = payable_order(customer)
    return payment_start(order_id=order.pk, customer=customer)


def unrecorded(customer) -> Payment:
    """A pending Stripe payment whose intent was created but whose id was never recorded."""
    order = payable_order(customer)
    return PaymentFactory(order=order, provider="stripe", provider_ref=None)


def state(payment: Payment) -> tuple:
    payment.refresh_from_db()
    order = Order.objects.get(pk=payment.order_id)
    return (payment.status, payment.provider_ref, order.status, order.paid_payment_id)


def paid_with_stripe(customer) -> Payment:
    payment = started(customer)
    payment_succeeded(payment_id=payment.pk)
    payment.refresh_from_db()
    return payment


def approved(payment: Payment, amount: int = 1000) -> Refund:
    """A staff refund of the payment's order, approved; its send never ran (ref unknown)."""
    return refund_issue(order_id=payment.order_id, staff=StaffFactory(), amount=amount)


def refund_row(refund: Refund) -> tuple:
    refund.refresh_from_db()
    return (refund.status, refund.provider_ref, refund.failure_message)


def refund_failed_reasons(refund: Refund) -> list[str]:
    return list(
        OrderEvent.objects.filter(refund=refund, kind="refund_failed").values_list(
            "reason", flat=True
        )
    )


# --- payment_intent.succeeded ---------------------------------------------------------------
def test_an_unknown_succeeded_intent_is_a_discrepancy_with_what_stripe_said(fake_stripe, caplog):
    obj = {
        "id": "pi_unknown",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 4500,
        "currency": "USD",
        "metadata": {"order_number": "X1"},
    }
    stored = deliver("evt_unknown", "payment_intent.succeeded", obj)
    assert processed(stored)
    assert list(
        ReconciliationDiscrepancy.objects.values_list(
            "kind", "amount", "provider_ref", "details", "order_id", "payment_id", "refund_id"
        )
    ) == [
        (
            "unknown_payment",
            4500,
            "pi_unknown",
            {"currency": "USD", "metadata": {"order_number": "X1"}},
            None,
            None,
            None,
        )
    ]
    assert logged(caplog) == [
        ("WARNING", "stripe: succeeded PaymentIntent pi_unknown is not one of ours")
    ]


def test_an_unknown_intent_without_usable_id_or_amount_records_zero_and_no_ref(
    customer, fake_stripe, caplog
):
    # a payment whose ref reads like the (non-string) id is not matched: ids are strings
    lookalike = PaymentFactory(
        order=payable_order(customer), provider="stripe", provider_ref="12345"
    )
    obj = {"id": 12345, "object": "payment_intent", "amount": "a lot"}
    stored = deliver("evt_odd", "payment_intent.succeeded", obj)
    assert processed(stored)
    assert list(
        ReconciliationDiscrepancy.objects.values_list("kind", "amount", "provider_ref", "details")
    ) == [("unknown_payment", 0, "", {"currency": "", "metadata": None})]
    assert state(lookalike)[:3] == ("pending", "12345", "pending_payment")
    assert logged(caplog) == [
        ("WARNING", "stripe: succeeded PaymentIntent 12345 is not one of ours")
    ]


def test_a_succeeded_intent_is_matched_by_its_id_alone(customer, fake_stripe):
    older = started(customer)
    newer = started(customer)
    obj = intent_obj(older)
    obj["metadata"] = {}
    stored = deliver("evt_ok", "payment_intent.succeeded", obj)
    assert processed(stored)
    assert state(older) == ("succeeded", older.provider_ref, "paid", older.pk)
    assert state(newer) == ("pending", newer.provider_ref, "pending_payment", None)
    assert ReconciliationDiscrepancy.objects.count() == 0


def test_the_amount_received_is_what_counts(customer, fake_stripe):
    payment = started(customer)
    obj = intent_obj(payment)
    obj["amount"] = 5000  # e.g. a partial capture: 3980 of 5000 received
    assert processed(deliver("evt_ok", "payment_intent.succeeded", obj))
    assert state(payment)[0] == "succeeded"


def test_without_amount_received_the_amount_counts(customer, fake_stripe):
    payment = started(customer)
    obj = intent_obj(payment)
    del obj["amount_received"]
    assert processed(deliver("evt_ok", "payment_intent.succeeded", obj))
    assert state(payment)[0] == "succeeded"


def test_a_received_amount_that_differs_is_left_for_review(customer, fake_stripe, caplog):
    payment = started(customer)
    obj = intent_obj(payment)
    obj["amount"] = 3980
    obj["amount_received"] = 3000
    stored = deliver("evt_short", "payment_intent.succeeded", obj)
    assert not processed(stored)
    assert state(payment)[0] == "pending"
    assert logged(caplog) == [
        (
            "ERROR",
            f"stripe: PaymentIntent {payment.provider_ref} collected 3000 cny, "
            f"payment {payment.pk} expects 3980 CNY; left for review",
        )
    ]


def test_another_currency_is_left_for_review_even_with_the_right_amount(
    customer, fake_stripe, caplog
):
    payment = started(customer)
    obj = intent_obj(payment)
    obj["currency"] = "USD"
    stored = deliver("evt_usd", "payment_intent.succeeded", obj)
    assert not processed(stored)
    assert state(payment)[0] == "pending"
    assert ReconciliationDiscrepancy.objects.count() == 0
    assert logged(caplog) == [
        (
            "ERROR",
            f"stripe: PaymentIntent {payment.provider_ref} collected 3980 USD, "
            f"payment {payment.pk} expects 3980 CNY; left for review",
        )
    ]


def test_the_currency_is_compared_without_case(customer, fake_stripe):
    payment = started(customer)
    obj = intent_obj(payment)
    obj["currency"] = "CNY"
    assert processed(deliver("evt_ok", "payment_intent.succeeded", obj))
    assert state(payment)[0] == "succeeded"


# --- matching a PaymentIntent to our payment ------------------------------------------------
def test_a_payment_of_another_provider_with_the_same_ref_is_not_ours(customer, fake_stripe):
    sandbox = PaymentFactory(order=payable_order(customer), provider_ref="pi_shared")
    obj = intent_obj(sandbox, intent_id="pi_shared")
    obj["metadata"] = {}
    assert processed(deliver("evt_x", "payment_intent.succeeded", obj))
    assert state(sandbox)[:3] == ("pending", "pi_shared", "pending_payment")
    assert ReconciliationDiscrepancy.objects.get().provider_ref == "pi_shared"


def test_metadata_naming_a_payment_of_another_provider_is_not_ours(customer, fake_stripe):
    sandbox = PaymentFactory(order=payable_order(customer), provider_ref=None)
    obj = intent_obj(sandbox, intent_id="pi_new")
    assert processed(deliver("evt_x", "payment_intent.succeeded", obj))
    assert state(sandbox)[:3] == ("pending", None, "pending_payment")
    assert ReconciliationDiscrepancy.objects.get().provider_ref == "pi_new"


def test_metadata_finds_the_payment_it_names_and_records_the_intent_id(customer, fake_stripe):
    target = unrecorded(customer)
    newer = unrecorded(customer)
    other_provider = PaymentFactory(order=payable_order(customer), provider_ref=None)
    obj = intent_obj(target, intent_id="pi_late")
    assert processed(deliver("evt_ok", "payment_intent.succeeded", obj))
    assert state(target) == ("succeeded", "pi_late", "paid", target.pk)
    assert state(newer) == ("pending", None, "pending_payment", None)
    assert state(other_provider)[:2] == ("pending", None)


def test_metadata_naming_a_payment_recorded_with_another_intent_is_not_ours(customer, fake_stripe):
    payment = started(customer)
    obj = intent_obj(payment, intent_id="pi_other")
    assert processed(deliver("evt_x", "payment_intent.succeeded", obj))
    assert state(payment) == ("pending", payment.provider_ref, "pending_payment", None)
    assert ReconciliationDiscrepancy.objects.get().provider_ref == "pi_other"


@pytest.mark.parametrize("metadata", [{}, None, {"payment_id": "abc"}, {"order_id": "1"}])
def test_without_a_payment_id_in_metadata_an_unknown_intent_is_not_ours(
    customer, fake_stripe, metadata
):
    payment = unrecorded(customer)
    obj = intent_obj(payment, intent_id="pi_late")
    obj["metadata"] = metadata
    assert processed(deliver("evt_x", "payment_intent.succeeded", obj))
    assert state(payment) == ("pending", None, "pending_payment", None)
    assert ReconciliationDiscrepancy.objects.get().provider_ref == "pi_late"


def test_a_non_string_intent_id_is_never_recorded(customer, fake_stripe):
    payment = unrecorded(customer)
    obj = intent_obj(payment, intent_id="unused")
    obj["id"] = 777
    assert processed(deliver("evt_ok", "payment_intent.succeeded", obj))
    assert state(payment) == ("succeeded", None, "paid", payment.pk)


# --- payment_intent.payment_failed ----------------------------------------------------------
def failed_intent(payment: Payment, error: dict | None, **kw) -> dict:
    obj = intent_obj(payment, status="requires_payment_method", **kw)
    if error is not None:
        obj["last_payment_error"] = error
    return obj


def failure(payment: Payment) -> tuple:
    payment.refresh_from_db()
    return (
        payment.status,
        payment.failure_message,
        payment.provider_detail,
        list(
            OrderEvent.objects.filter(payment=payment, kind="payment_failed").values_list(
                "reason", flat=True
            )
        ),
    )


def test_a_failure_reads_the_decline_code_before_the_error_code(customer, fake_stripe, caplog):
    payment = started(customer)
    error = {
        "decline_code": "insufficient_funds",
        "code": "card_declined",
        "message": "Your card has insufficient funds (bank).",
    }
    assert processed(
        deliver("evt_f", "payment_intent.payment_failed", failed_intent(payment, error))
    )
    assert failure(payment) == (
        "failed",
        "Your card has insufficient funds.",
        "insufficient_funds: Your card has insufficient funds (bank).",
        ["insufficient_funds"],
    )
    assert Notification.objects.filter(user=customer.user, kind="payment_failed").count() == 1
    assert logged(caplog) == []


def test_a_failure_without_decline_code_reads_the_error_code(customer, fake_stripe):
    payment = started(customer)
    error = {"code": "expired_card", "message": "Expired."}
    assert processed(
        deliver("evt_f", "payment_intent.payment_failed", failed_intent(payment, error))
    )
    assert failure(payment) == (
        "failed",
        "Your card has expired.",
        "expired_card: Expired.",
        ["expired_card"],
    )


@pytest.mark.parametrize("error", [None, {}])
def test_a_failure_without_error_details_reads_as_declined(customer, fake_stripe, error):
    payment = started(customer)
    assert processed(
        deliver("evt_f", "payment_intent.payment_failed", failed_intent(payment, error))
    )
    assert failure(payment) == ("failed", "The payment was declined.", "declined: ", [""])


def test_a_failure_without_message_keeps_only_the_code_for_operators(customer, fake_stripe):
    payment = started(customer)
    error = {"code": "card_declined"}
    assert processed(
        deliver("evt_f", "payment_intent.payment_failed", failed_intent(payment, error))
    )
    assert failure(payment) == (
        "failed",
        "Your card was declined.",
        "card_declined: ",
        ["card_declined"],
    )


def test_a_failure_is_matched_by_metadata_when_the_intent_id_was_not_recorded(
    customer, fake_stripe
):
    payment = unrecorded(customer)
    error = {"code": "card_declined", "message": "Declined"}
    obj = failed_intent(payment, error, intent_id="pi_late")
    assert processed(deliver("evt_f", "payment_intent.payment_failed", obj))
    assert failure(payment) == (
        "failed",
        "Your card was declined.",
        "card_declined: Declined",
        ["card_declined"],
    )
    assert payment.provider_ref == "pi_late"


def test_an_unknown_failed_intent_is_processed_and_logged(customer, fake_stripe, caplog):
    payment = started(customer)
    obj = failed_intent(payment, {"code": "card_declined"}, intent_id="pi_nobody")
    obj["metadata"] = {}
    assert processed(deliver("evt_f", "payment_intent.payment_failed", obj))
    assert failure(payment) == ("pending", "", "", [])
    assert ReconciliationDiscrepancy.objects.count() == 0
    assert logged(caplog) == [
        ("WARNING", "stripe: failed PaymentIntent pi_nobody is not one of ours")
    ]


# --- charge.refunded ------------------------------------------------------------------------
def test_a_refunded_charge_applies_each_refund_of_ours_it_lists(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    Refund.objects.filter(pk=refund.pk).update(provider_ref="re_known")
    listed = [refund_obj("re_known", payment.provider_ref, 1000), "re_not_an_object"]
    obj = charge_refunded_obj(payment.provider_ref, 3980, [listed[0]])
    obj["refunds"]["data"] = listed
    assert processed(deliver("evt_ch", "charge.refunded", obj))
    assert refund_row(refund) == ("succeeded", "re_known", "")
    order = Order.objects.get(pk=payment.order_id)
    assert (order.status, order.refunded_amount) == ("partially_refunded", 1000)


def test_a_refunded_charge_finds_a_refund_by_metadata(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    listed = [refund_obj("re_live", payment.provider_ref, 1000, refund_id=refund.pk)]
    obj = charge_refunded_obj(payment.provider_ref, 3980, listed)
    assert processed(deliver("evt_ch", "charge.refunded", obj))
    assert refund_row(refund) == ("succeeded", "re_live", "")


def test_a_refunded_charge_proves_the_payment_found_by_metadata(customer, fake_stripe):
    # the intent id was never recorded, and this API version lists no refunds on the charge
    payment = unrecorded(customer)
    obj = charge_refunded_obj("pi_late", 3980, [])
    del obj["refunds"]
    obj["metadata"] = {"payment_id": str(payment.pk)}
    assert processed(deliver("evt_ch", "charge.refunded", obj))
    assert state(payment) == ("succeeded", "pi_late", "paid", payment.pk)


def test_a_refunded_charge_of_an_unknown_payment_waits(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    obj = charge_refunded_obj("pi_nobody", 3980, [])
    stored = deliver("evt_ch", "charge.refunded", obj)
    assert not processed(stored)
    assert state(payment) == ("succeeded", payment.provider_ref, "paid", payment.pk)


def test_a_refunded_charge_listing_a_refund_we_do_not_know_waits(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    listed = [refund_obj("re_dashboard", payment.provider_ref, 500)]
    stored = deliver(
        "evt_ch", "charge.refunded", charge_refunded_obj(payment.provider_ref, 3980, listed)
    )
    assert not processed(stored)
    assert Order.objects.get(pk=payment.order_id).refunded_amount == 0


# --- refund events: matching a Stripe Refund to ours ----------------------------------------
def test_a_refund_found_by_metadata_gets_its_ref_recorded(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    elsewhere = approved(paid_with_stripe(customer))
    obj = refund_obj("re_live", payment.provider_ref, 1000, refund_id=refund.pk, status="pending")
    assert processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("approved", "re_live", "")
    assert refund_row(elsewhere) == ("approved", None, "")


def test_metadata_finds_the_refund_it_names(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    older = approved(payment)
    newer = approved(paid_with_stripe(customer))  # one open refund per order
    obj = refund_obj("re_live", payment.provider_ref, 1000, refund_id=older.pk)
    assert processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(older) == ("succeeded", "re_live", "")
    assert refund_row(newer) == ("approved", None, "")


def test_metadata_naming_a_refund_sent_under_another_ref_is_not_ours(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    Refund.objects.filter(pk=refund.pk).update(provider_ref="re_first")
    obj = refund_obj("re_second", payment.provider_ref, 1000, refund_id=refund.pk)
    assert not processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("approved", "re_first", "")


def test_metadata_naming_a_refund_of_another_order_is_not_ours(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    other = approved(paid_with_stripe(customer))
    obj = refund_obj("re_live", payment.provider_ref, 1000, refund_id=other.pk)
    assert not processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(other) == ("approved", None, "")


def test_metadata_naming_no_refund_of_ours_waits(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    obj = refund_obj("re_live", payment.provider_ref, 1000, refund_id=10**9)
    assert not processed(deliver("evt_re", "refund.updated", obj))


def test_a_refund_of_an_unknown_payment_is_not_matched_by_metadata(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    obj = refund_obj("re_live", "pi_nobody", 1000, refund_id=refund.pk)
    assert not processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("approved", None, "")


def test_a_refund_object_without_id_or_metadata_matches_nothing(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    obj = refund_obj("unused", payment.provider_ref, 1000)
    del obj["id"]
    assert not processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("approved", None, "")


# --- refund events: applying what Stripe says -----------------------------------------------
def test_a_canceled_refund_fails_with_its_status_as_the_reason(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    obj = refund_obj("re_live", payment.provider_ref, 1000, refund_id=refund.pk, status="canceled")
    assert processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("failed", "re_live", REFUSED)
    assert refund_failed_reasons(refund) == ["Stripe: canceled"]


def test_a_report_our_refund_cannot_take_is_kept_and_logged(customer, fake_stripe, caplog):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    Refund.objects.filter(pk=refund.pk).update(status="rejected", provider_ref="re_live")
    obj = refund_obj("re_live", payment.provider_ref, 1000)
    assert processed(deliver("evt_re", "refund.updated", obj))
    assert refund_row(refund) == ("rejected", "re_live", "")
    assert logged(caplog) == [
        (
            "WARNING",
            f"stripe: refund {refund.pk} status succeeded not applied: "
            "A refund that is rejected cannot become succeeded.",
        )
    ]


# --- refund_send and the refund events that were waiting for it -----------------------------
def waiting_event(event_id: str, obj: dict, **fields) -> WebhookEvent:
    """A stored refund event not processed yet (e.g. it named a refund we did not know)."""
    defaults = {"provider": "stripe", "event_type": "refund.updated", "processed_at": None}
    return WebhookEvent.objects.create(
        event_id=event_id, payload={"id": event_id, "data": {"object": obj}}, **defaults | fields
    )


def test_sending_a_refund_applies_the_events_that_waited_for_its_ref(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    obj = refund_obj(f"re_test_{refund.pk}", payment.provider_ref, 1000)
    stored = deliver("evt_early", "refund.updated", obj)
    assert not processed(stored)
    assert refund_send(refund_id=refund.pk).status == "succeeded"
    assert processed(stored)
    assert refund_row(refund) == ("succeeded", f"re_test_{refund.pk}", "")


def test_sending_a_refund_applies_only_unprocessed_stripe_refund_events_of_its_payment(
    customer, fake_stripe
):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    ref = f"re_test_{refund.pk}"
    later = approved(paid_with_stripe(customer))
    Refund.objects.filter(pk=later.pk).update(provider_ref="re_later")
    # each would be applied if settling took it: the refund would succeed or fail
    skipped = [
        waiting_event(
            "evt_other_provider", refund_obj(ref, payment.provider_ref, 1000), provider="sandbox"
        ),
        waiting_event(
            "evt_done",
            refund_obj(ref, payment.provider_ref, 1000, status="failed"),
            processed_at="2030-01-01T00:00:00Z",
        ),
        waiting_event(
            "evt_crashed",
            refund_obj(ref, payment.provider_ref, 1000),
            event_type="charge.dispute.created",
        ),
        waiting_event("evt_other_payment", refund_obj("re_later", "pi_elsewhere", 1000)),
    ]
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref) == ("approved", ref)
    assert [processed(e) for e in skipped] == [False, True, False, False]
    assert refund_row(later) == ("approved", "re_later", "")


def during_the_call(fake: FakeStripe, action) -> None:
    """Run ``action`` while Stripe handles the next request (e.g. a webhook landing meanwhile)."""
    answer = fake._answer

    def answer_after(call):
        action()
        return answer(call)

    fake._answer = answer_after


def test_a_refund_settled_while_the_provider_was_unreachable_keeps_no_retry_message(
    customer, fake_stripe
):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    during_the_call(
        fake_stripe,
        lambda: Refund.objects.filter(pk=refund.pk).update(status="succeeded"),
    )
    fake_stripe.fail_next_connection()
    assert refund_send(refund_id=refund.pk).status == "succeeded"
    assert refund_row(refund) == ("succeeded", None, "")


def test_a_ref_recorded_while_the_refund_was_sent_is_kept(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    during_the_call(
        fake_stripe,
        lambda: Refund.objects.filter(pk=refund.pk).update(provider_ref="re_from_webhook"),
    )
    assert refund_send(refund_id=refund.pk).provider_ref == "re_from_webhook"
    assert refund_row(refund) == ("approved", "re_from_webhook", "")


def test_a_refund_without_payment_returns_the_payment_the_order_was_paid_with(
    customer, fake_stripe
):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    Refund.objects.filter(pk=refund.pk).update(payment=None)
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref) == ("approved", f"re_test_{refund.pk}")
    [call] = fake_stripe.calls_to("/v1/refunds")
    assert (call.form["payment_intent"], call.form["amount"]) == (payment.provider_ref, "1000")


def test_a_refund_without_payment_of_an_order_paid_by_none_fails(customer, fake_stripe):
    payment = paid_with_stripe(customer)
    refund = approved(payment)
    Refund.objects.filter(pk=refund.pk).update(payment=None)
    Order.objects.filter(pk=payment.order_id).update(paid_payment=None)
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.failure_message) == (
        "failed",
        "There is no collected payment to refund.",
    )
    assert fake_stripe.calls_to("/v1/refunds") == []


def test_a_refund_goes_to_the_provider_of_its_payment(fake_stripe):
    order = paid(mode="courier")  # paid through the sandbox; Stripe is configured now
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref) == ("succeeded", f"sandbox_re_{refund.pk}")
    assert fake_stripe.calls == []


# --- storing events -------------------------------------------------------------------------
def test_overlong_ids_and_types_are_stored_cut_to_their_columns(fake_stripe):
    event_id = "evt_" + "7" * 296
    event_type = "x." * 75
    stored = deliver(event_id, event_type, {"id": "obj_1"})
    stored = WebhookEvent.objects.get(pk=stored.pk)
    assert (stored.event_id, stored.event_type) == (event_id[:255], event_type[:100])
    assert stored.processed_at is not None
    # a redelivery finds the stored event by its cut id
    assert deliver(event_id, event_type, {"id": "obj_1"}) is None
    assert WebhookEvent.objects.count() == 1


def test_a_redelivery_is_found_among_stripe_events_only(fake_stripe):
    other = WebhookEvent.objects.create(
        provider="sandbox", event_id="evt_same", event_type="customer.created", payload={}
    )
    first = deliver("evt_same", "customer.created", {"id": "cus_1"})
    assert (first.provider, processed(first)) == ("stripe", True)
    assert deliver("evt_same", "customer.created", {"id": "cus_1"}) is None
    assert not processed(other)


def test_processing_one_event_marks_only_that_event(customer, fake_stripe):
    payment = started(customer)
    obj = intent_obj(payment)
    obj["amount_received"] = 1
    waiting = deliver("evt_short", "payment_intent.succeeded", obj)
    done = deliver("evt_cust", "customer.created", {"id": "cus_1"})
    assert (processed(waiting), processed(done)) == (False, True)
