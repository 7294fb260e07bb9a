"""Plain INSERTs and reads of model instances (core/rows.py): the same rows and instances the
ORM writes and builds."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from core.rows import columns, insert_rows, instance_from, width
from shop.models import CouponCode, CustomerCoupon, Order, OrderEvent, OrderLine, Sku
from shop.services import coupons
from tests.factories import CategoryFactory, CommunityFactory, SkuFactory
from tests.shop.factories_coupons import CouponCodeFactory, coupon_for
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


DEADLINE = timezone.now() + timedelta(minutes=15)


def _order(customer, number: str) -> Order:
    return Order(
        number=number,
        customer=customer,
        delivery_mode=Order.DeliveryMode.COURIER,
        shipping_address={"city": "杭州", "detail": "1 号", "nested": {"n": [1, 2]}},
        subtotal=1990,
        discount=100,
        total=1890,
        payment_deadline=DEADLINE,
    )


def test_an_inserted_row_reads_back_as_the_orm_would_have_written_it():
    customer = QuickCustomerFactory()
    by_hand = insert_rows([_order(customer, "hand")])[0]
    by_orm = _order(customer, "orm")
    by_orm.save()

    assert by_hand.pk is not None and not by_hand._state.adding
    assert by_hand.created_at is not None  # auto_now_add filled
    stored, twin = Order.objects.get(pk=by_hand.pk), Order.objects.get(pk=by_orm.pk)
    assert _fields(stored) == _fields(by_hand)
    differ = {"id", "number", "created_at"}
    expected = {k: v for k, v in _fields(twin).items() if k not in differ}
    assert {k: v for k, v in _fields(stored).items() if k not in differ} == expected
    assert stored.shipping_address["nested"] == {"n": [1, 2]}


def test_many_rows_in_one_statement_get_their_own_keys_in_order(django_assert_num_queries):
    customer = QuickCustomerFactory()
    order = insert_rows([_order(customer, "many")])[0]
    sku = SkuFactory()
    lines = [
        OrderLine(
            order=order,
            sku=sku,
            product_title=f"line {i}",
            sku_code=sku.code,
            sku_attributes={"i": i},
            list_unit_price=100,
            unit_price=100,
            quantity=1,
            line_total=100,
        )
        for i in range(3)
    ]
    with django_assert_num_queries(1):
        insert_rows(lines)
    assert len({line.pk for line in lines}) == 3
    for i, line in enumerate(lines):
        stored = OrderLine.objects.get(pk=line.pk)
        assert (stored.product_title, stored.sku_attributes) == (f"line {i}", {"i": i})


def test_what_it_refuses(django_assert_num_queries):
    customer = QuickCustomerFactory()
    with django_assert_num_queries(0):
        assert insert_rows([]) == []
    order = insert_rows([_order(customer, "once")])[0]
    with pytest.raises(ValueError, match="new rows only"):
        insert_rows([order])
    event = OrderEvent(order_id=order.pk, kind=OrderEvent.Kind.PLACED)
    with pytest.raises(TypeError, match="one model"):
        insert_rows([_order(customer, "mixed"), event])


def test_a_refused_row_raises_like_the_orm():
    customer = QuickCustomerFactory()
    insert_rows([_order(customer, "twice")])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows([_order(customer, "twice")])  # the number is unique


def test_an_instance_read_by_hand_equals_the_one_a_queryset_builds():
    sku = SkuFactory(attributes={"size": "500g", "tags": ["a"]})
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns(Sku, 's')} FROM shop_sku s WHERE s.id = %s", [sku.pk])
        row = cursor.fetchone()
    built = instance_from(Sku, row)
    loaded = Sku.objects.get(pk=sku.pk)
    assert model_to_dict(built) == model_to_dict(loaded)
    assert built.attributes == {"size": "500g", "tags": ["a"]}
    assert not built._state.adding and built._state.db == "default"
    with pytest.raises(ValueError, match="values for"):
        instance_from(Sku, row[:-1])
    assert width(Sku) == len(row)


def test_held_coupons_come_with_their_template_scopes_and_code():
    customer = QuickCustomerFactory()
    sku = SkuFactory()
    category, community = CategoryFactory(), CommunityFactory()
    plain = coupon_for(
        customer,
        amount=100,
        scope="skus",
        skus=[sku],
        products=[sku.product],
        categories=[category],
        communities=[community],
    )
    code = CouponCodeFactory()
    redeemed = CustomerCoupon.objects.create(
        template=code.template,
        customer=customer,
        code=code,
        source=CustomerCoupon.Source.CODE,
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(days=1),
    )
    other = coupon_for(QuickCustomerFactory(), amount=100)

    found = coupons._held_coupons(
        customer_id=customer.pk, coupon_ids={plain.pk, redeemed.pk, other.pk}
    )
    assert set(found) == {plain.pk, redeemed.pk}  # never another customer's
    assert found[plain.pk].code is None
    assert found[plain.pk].template._scope_ids == {
        "communities": {community.pk},
        "categories": {category.pk},
        "products": {sku.product_id},
        "skus": {sku.pk},
    }
    assert found[redeemed.pk].template._scope_ids == {
        "communities": set(),
        "categories": set(),
        "products": set(),
        "skus": set(),
    }
    assert isinstance(found[redeemed.pk].code, CouponCode)
    assert model_to_dict(found[redeemed.pk].code) == model_to_dict(code)
    assert model_to_dict(found[plain.pk]) == model_to_dict(CustomerCoupon.objects.get(pk=plain.pk))
    assert coupons._held_coupons(customer_id=customer.pk, coupon_ids=set()) == {}
