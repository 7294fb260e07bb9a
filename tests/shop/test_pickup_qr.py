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
