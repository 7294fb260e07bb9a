"""The shop admin through Django's test client, logged in as an operator: money in yuan, and
every write going through the same services as the API."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from core.models import Notification
from shop.models import CommunityMembership, Order, Payment, Refund, Sku, WebhookEvent
from shop.services.payments import payment_start
from tests.factories import (
    CommunityFactory,
    CustomerFactory,
    ProductFactory,
    SkuFactory,
    StaffFactory,
)
from tests.shop.factories_orders import paid
from tests.shop.factories_payments import payable_order
from tests.shop.stripe_fakes import event, intent_obj, refund_obj, use_fake_stripe

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def changelist(model: str) -> str:
    return reverse(f"admin:shop_{model}_changelist")


def change(model: str, pk: int) -> str:
    return reverse(f"admin:shop_{model}_change", args=[pk])


def run_action(client: Client, model: str, action: str, pks: list[int], **extra):
    """What the changelist's action bar posts."""
    return client.post(
        changelist(model), {"action": action, "_selected_action": pks, "index": 0, **extra}
    )


def confirm_action(client: Client, model: str, action: str, pks: list[int], **fields):
    """What an action's own form page posts back (no ``index``; ``apply`` set)."""
    return client.post(
        changelist(model), {"action": action, "_selected_action": pks, "apply": "1", **fields}
    )


# --- money in yuan ---------------------------------------------------------------------------
def test_product_and_sku_lists_show_prices_in_yuan(operator_client):
    sku = SkuFactory(price=1990, list_price=2990, product=ProductFactory(title="Tea"))

    products = operator_client.get(changelist("product"))
    skus = operator_client.get(changelist("sku"))

    assert products.status_code == 200 and skus.status_code == 200
    assert "¥19.90" in products.text
    assert "¥19.90" in skus.text and "¥29.90" in skus.text
    assert sku.code in skus.text


def test_the_sku_form_shows_yuan_and_saves_fen(operator_client):
    sku = SkuFactory(price=1990, list_price=2990, stock=7)
    page = operator_client.get(change("sku", sku.pk))
    assert 'name="price" value="19.90"' in page.text
    assert 'name="list_price" value="29.90"' in page.text

    response = operator_client.post(
        change("sku", sku.pk),
        {
            "code": sku.code,
            "attributes": "{}",
            "price": "25.5",
            "list_price": "",
            "stock_change": "0",
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    sku.refresh_from_db()
    assert (sku.price, sku.list_price, sku.stock) == (2550, None, 7)


@pytest.mark.parametrize("typed", ["12.345", "-1", "1e3", "abc"])
def test_the_sku_form_refuses_what_is_not_yuan(operator_client, typed):
    sku = SkuFactory(price=1990, list_price=2990)

    response = operator_client.post(
        change("sku", sku.pk),
        {
            "code": sku.code,
            "attributes": "{}",
            "price": typed,
            "list_price": "29.90",
            "stock_change": "0",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["price"]
    assert "yuan" in errors["price"][0]
    sku.refresh_from_db()
    assert sku.price == 1990


def test_orders_payments_and_refunds_show_yuan(operator_client):
    order = paid(lines=[(SkuFactory(price=1990), 2)])
    Refund.objects.create(order=order, payment_id=order.paid_payment_id, amount=1234)

    orders = operator_client.get(changelist("order"))
    order_page = operator_client.get(change("order", order.pk))
    payments = operator_client.get(changelist("payment"))
    refunds = operator_client.get(changelist("refund"))

    assert "¥39.80" in orders.text
    # read-only order fields and its lines
    assert order_page.status_code == 200
    assert "¥39.80" in order_page.text and "¥19.90" in order_page.text
    assert "3980" not in order_page.text.replace(order.number, "")
    assert 'name="total"' not in order_page.text  # read-only, not an input in fen
    payment_page = operator_client.get(change("payment", order.paid_payment_id))
    assert "¥39.80" in payment_page.text and 'name="amount"' not in payment_page.text
    assert "¥39.80" in payments.text
    assert "¥12.34" in refunds.text


# --- issue refund ----------------------------------------------------------------------------
def test_issue_refund_asks_for_an_amount_in_yuan(operator_client):
    order = paid(lines=[(SkuFactory(price=1990), 2)])

    response = run_action(operator_client, "order", "issue_refund", [order.pk])

    assert response.status_code == 200
    assert 'name="amount"' in response.text
    assert order.number in response.text
    assert "¥39.80" in response.text  # what can still be refunded
    # the page posts back as the same action on the same order
    assert f'name="_selected_action" value="{order.pk}"' in response.text
    assert 'name="action" value="issue_refund"' in response.text
    assert not Refund.objects.exists()


def test_issue_refund_refunds_exactly_the_amount_entered(
    operator_client, staff, django_capture_on_commit_callbacks
):
    order = paid(lines=[(SkuFactory(price=1990), 2)])

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(
            operator_client, "order", "issue_refund", [order.pk], amount="12.34", note="hi"
        )

    assert response.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == 1234 and type(refund.amount) is int
    # sent to the (sandbox) provider after commit, like a refund issued through the API
    assert (refund.order_id, refund.status, refund.reason) == (order.pk, "succeeded", "staff")
    order.refresh_from_db()
    assert (order.refunded_amount, order.status) == (1234, Order.Status.PARTIALLY_REFUNDED)
    assert (refund.requested_by, refund.decided_by, refund.note) == (staff, staff, "hi")
    assert sum(line.amount for line in refund.lines.all()) == 1234
    assert messages_of(response) == [("success", f"Refund of ¥12.34 issued for order {order}.")]


def test_issue_refund_shows_the_service_refusal_as_a_message(operator_client):
    order = paid(lines=[(SkuFactory(price=1990), 2)])

    response = confirm_action(operator_client, "order", "issue_refund", [order.pk], amount="39.81")

    assert response.status_code == 302
    assert not Refund.objects.exists()
    ((level, text),) = messages_of(response)
    assert level == "error"
    assert "refund_exceeds_paid" in text


def test_issue_refund_of_an_unpaid_order_is_refused_by_the_service(operator_client):
    order = payable_order()

    response = confirm_action(operator_client, "order", "issue_refund", [order.pk], amount="1.00")

    assert response.status_code == 302
    assert not Refund.objects.exists()
    assert [level for level, _ in messages_of(response)] == ["error"]
    assert "order_not_refundable" in messages_of(response)[0][1]


@pytest.mark.parametrize("typed", ["12.345", "-1", "1e3", "abc", "", "0"])
def test_issue_refund_refuses_bad_amounts_on_the_form(operator_client, typed):
    order = paid(lines=[(SkuFactory(price=1990), 2)])

    response = confirm_action(operator_client, "order", "issue_refund", [order.pk], amount=typed)

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["amount"]
    assert not Refund.objects.exists()


def test_issue_refund_takes_one_order_at_a_time(operator_client):
    a, b = paid(), paid()

    response = confirm_action(operator_client, "order", "issue_refund", [a.pk, b.pk], amount="1.00")

    assert response.status_code == 302
    assert not Refund.objects.exists()
    assert messages_of(response) == [("error", "Issue a refund for one order at a time.")]


def test_issue_refund_needs_the_permission_to_add_refunds():
    order = paid()
    viewer = StaffFactory(is_superuser=False)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_order", "change_order"])
    )
    client = Client()
    client.force_login(viewer)

    page = client.get(changelist("order"))
    response = confirm_action(client, "order", "issue_refund", [order.pk], amount="1.00")

    assert page.status_code == 200
    assert 'value="fulfil"' in page.text and 'value="issue_refund"' not in page.text
    assert response.status_code == 302
    assert messages_of(response) == [("warning", "No action selected.")]
    assert not Refund.objects.exists()


# --- webhook events --------------------------------------------------------------------------
@pytest.fixture
def stuck_event(settings, monkeypatch, customer):
    """A Stripe success event that was stored but never applied (say the worker died)."""
    use_fake_stripe(settings, monkeypatch)
    payment = payment_start(order_id=payable_order(customer).pk, customer=customer)
    payload = json.loads(event("evt_stuck", "payment_intent.succeeded", intent_obj(payment)))
    return WebhookEvent.objects.create(
        provider="stripe", event_id="evt_stuck", event_type=payload["type"], payload=payload
    )


def test_webhook_events_filter_by_processed_state(operator_client, stuck_event):
    done = WebhookEvent.objects.create(
        provider="stripe", event_id="evt_done", event_type="customer.created", payload={}
    )
    WebhookEvent.objects.filter(pk=done.pk).update(processed_at=done.received_at)

    unprocessed = operator_client.get(changelist("webhookevent"), {"processed": "no"})
    processed = operator_client.get(changelist("webhookevent"), {"processed": "yes"})

    assert [e.pk for e in unprocessed.context["cl"].result_list] == [stuck_event.pk]
    assert [e.pk for e in processed.context["cl"].result_list] == [done.pk]


def test_reprocess_applies_a_stuck_event_once(
    operator_client, stuck_event, customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(operator_client, "webhookevent", "reprocess", [stuck_event.pk])

    assert response.status_code == 302
    stuck_event.refresh_from_db()
    assert stuck_event.processed_at is not None
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    assert Order.objects.get().status == Order.Status.PAID
    assert messages_of(response) == [("success", "Processed: 1 of 1.")]
    first_processed_at = stuck_event.processed_at
    operator_client.get(changelist("webhookevent"))  # the redirect shows (and uses up) messages

    with django_capture_on_commit_callbacks(execute=True):
        again = run_action(operator_client, "webhookevent", "reprocess", [stuck_event.pk])

    stuck_event.refresh_from_db()
    assert stuck_event.processed_at == first_processed_at
    assert Notification.objects.filter(user=customer.user, kind="order_paid").count() == 1
    assert messages_of(again) == [("success", "Processed: 1 of 1.")]


def test_reprocess_leaves_an_event_that_still_cannot_apply(operator_client, db):
    # a Stripe refund report naming no refund of ours (yet): it waits for refund_send
    payload = json.loads(event("evt_wait", "refund.updated", refund_obj("re_x", "pi_x", 100)))
    waiting = WebhookEvent.objects.create(
        provider="stripe", event_id="evt_wait", event_type=payload["type"], payload=payload
    )

    response = run_action(operator_client, "webhookevent", "reprocess", [waiting.pk])

    waiting.refresh_from_db()
    assert waiting.processed_at is None
    assert messages_of(response) == [
        ("warning", "Processed: 0 of 1. Still waiting: stripe refund.updated evt_wait.")
    ]


def test_reprocess_leaves_a_processed_event_alone(operator_client, stuck_event):
    # given: an event marked processed (say an operator settled it by hand) whose payload would
    # still pay the order if it were applied again
    WebhookEvent.objects.filter(pk=stuck_event.pk).update(processed_at=stuck_event.received_at)

    response = run_action(operator_client, "webhookevent", "reprocess", [stuck_event.pk])

    assert Payment.objects.get().status == Payment.Status.PENDING
    assert Order.objects.get().status == Order.Status.PENDING_PAYMENT
    assert messages_of(response) == [("success", "Processed: 1 of 1.")]


def test_webhook_events_stay_read_only(operator_client, stuck_event):
    page = operator_client.get(change("webhookevent", stuck_event.pk))

    assert page.status_code == 200
    assert 'name="_save"' not in page.text


# --- community memberships -------------------------------------------------------------------
def add_member(client: Client, community, customer):
    return client.post(
        reverse("admin:shop_communitymembership_add"),
        {"community": community.pk, "customer": customer.pk},
    )


def test_adding_a_member_goes_through_the_join_service(operator_client):
    community, shopper = CommunityFactory(), CustomerFactory()

    response = add_member(operator_client, community, shopper)

    assert response.status_code == 302
    membership = CommunityMembership.objects.get(community=community, customer=shopper)
    assert membership.joined_at is not None
    assert messages_of(response) == [("success", f"{shopper} joined {community}.")]


def test_adding_an_existing_member_again_changes_nothing(operator_client):
    community, shopper = CommunityFactory(), CustomerFactory()
    add_member(operator_client, community, shopper)
    operator_client.get(changelist("communitymembership"))  # shows (uses up) its message
    joined_at = CommunityMembership.objects.get(customer=shopper).joined_at

    response = add_member(operator_client, community, shopper)

    assert response.status_code == 302
    assert CommunityMembership.objects.get(customer=shopper).joined_at == joined_at
    assert messages_of(response) == [("info", f"{shopper} is already a member of {community}.")]


def test_joining_an_inactive_community_is_refused_by_the_service(operator_client):
    community, shopper = CommunityFactory(is_active=False), CustomerFactory()

    response = add_member(operator_client, community, shopper)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "This community does not exist. (community_not_found)"
    ]
    assert not CommunityMembership.objects.filter(customer=shopper).exists()


def test_removing_members_goes_through_the_leave_service(operator_client):
    community = CommunityFactory()
    leader_membership = CommunityMembership.objects.create(
        community=community, customer=community.leader
    )
    member = CommunityMembership.objects.create(community=community, customer=CustomerFactory())

    response = run_action(
        operator_client,
        "communitymembership",
        "remove_members",
        [leader_membership.pk, member.pk],
    )

    assert response.status_code == 302
    assert list(CommunityMembership.objects.values_list("pk", flat=True)) == [leader_membership.pk]
    levels = sorted(messages_of(response))
    assert levels[0][0] == "error" and "leader_cannot_leave" in levels[0][1]
    assert levels[1] == ("success", "Removed: 1")


def test_memberships_cannot_be_edited_or_deleted_raw(operator_client):
    community = CommunityFactory()
    member = CommunityMembership.objects.create(community=community, customer=CustomerFactory())

    page = operator_client.get(change("communitymembership", member.pk))
    delete = operator_client.post(
        reverse("admin:shop_communitymembership_delete", args=[member.pk]), {"post": "yes"}
    )
    bulk = run_action(operator_client, "communitymembership", "delete_selected", [member.pk])

    assert page.status_code == 200 and 'name="_save"' not in page.text
    assert delete.status_code == 403
    assert messages_of(bulk) == [("warning", "No action selected.")]
    assert CommunityMembership.objects.filter(pk=member.pk).exists()


def test_a_community_page_links_to_its_members(operator_client):
    community = CommunityFactory()
    CommunityMembership.objects.create(community=community, customer=CustomerFactory())

    page = operator_client.get(change("community", community.pk))

    assert page.status_code == 200
    link = f"{changelist('communitymembership')}?community__id__exact={community.pk}"
    assert f'<a href="{link}">1 member(s)</a>' in page.text
    assert "memberships-TOTAL_FORMS" not in page.text  # no inline to edit members raw


def test_a_sku_row_is_saved_with_the_price_typed(operator_client):
    """Inline SKUs on the product page take yuan too."""
    product = ProductFactory()
    sku = SkuFactory(product=product, price=100, list_price=None, stock=3)

    response = operator_client.post(
        change("product", product.pk),
        {
            "title": product.title,
            "description": "",
            "images": "[]",
            "category": product.category_id,
            "status": product.status,
            "purchase_limit": "",
            "skus-TOTAL_FORMS": "1",
            "skus-INITIAL_FORMS": "1",
            "skus-MIN_NUM_FORMS": "0",
            "skus-MAX_NUM_FORMS": "1000",
            "skus-0-id": sku.pk,
            "skus-0-product": product.pk,
            "skus-0-code": sku.code,
            "skus-0-attributes": "{}",
            "skus-0-price": "0.99",
            "skus-0-list_price": "1.00",
            "skus-0-stock_change": "0",
            "skus-0-is_active": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Sku.objects.values_list("price", "list_price", "stock").get(pk=sku.pk) == (99, 100, 3)
