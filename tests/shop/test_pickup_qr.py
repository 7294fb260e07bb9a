import pytest
import segno

from tests.shop.factories_orders import paid, place

pytestmark = pytest.mark.django_db


def test_paid_pickup_order_has_a_qr_code_of_its_pickup_code(customer, shopper):
    order = paid(customer)

    response = shopper.get(f"/api/v1/orders/{order.pk}/pickup-qr")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    expected = segno.make(order.pickup_code, error="m").svg_inline(scale=8, title="Pickup code")
    assert response.content.decode() == expected


def test_unpaid_order_has_no_qr_code(customer, shopper):
    order = place(customer)

    response = shopper.get(f"/api/v1/orders/{order.pk}/pickup-qr")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_pickup_code"


def test_someone_elses_order_qr_is_404(shopper):
    order = paid()

    response = shopper.get(f"/api/v1/orders/{order.pk}/pickup-qr")

    assert response.status_code == 404


def test_pickup_code_guessing_is_rate_limited(settings, client_for):
    settings.PICKUP_VERIFY_RATE = "3/m"
    order = paid()
    leader = client_for(order.community.leader.user)

    answers = [leader.post("/api/v1/pickup/verify", {"code": "00000000"}) for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1]["Retry-After"]) > 0
