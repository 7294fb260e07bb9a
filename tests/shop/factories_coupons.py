"""Coupon templates, codes and customers' coupons for the tests."""

from datetime import timedelta

import factory
from django.db.models import F
from django.utils import timezone
from factory.django import DjangoModelFactory

from shop.models import CouponCode, CouponTemplate, CustomerCoupon


class CouponTemplateFactory(DjangoModelFactory):
    """An active claimable fixed coupon (1 yuan off), valid 30 days after claiming."""

    class Meta:
        model = CouponTemplate
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Coupon {n}")
    kind = CouponTemplate.Kind.FIXED
    amount = 100
    channel = CouponTemplate.Channel.CLAIMABLE
    status = CouponTemplate.Status.ACTIVE
    valid_days = 30

    @factory.post_generation
    def communities(self, create, extracted, **kwargs):
        if create and extracted:
            self.communities.set(extracted)

    @factory.post_generation
    def products(self, create, extracted, **kwargs):
        if create and extracted:
            self.products.set(extracted)

    @factory.post_generation
    def skus(self, create, extracted, **kwargs):
        if create and extracted:
            self.skus.set(extracted)

    @factory.post_generation
    def categories(self, create, extracted, **kwargs):
        if create and extracted:
            self.categories.set(extracted)


class CouponCodeFactory(DjangoModelFactory):
    class Meta:
        model = CouponCode

    code = factory.Sequence(lambda n: f"CODE{n:04d}")
    template = factory.SubFactory(
        CouponTemplateFactory, channel=CouponTemplate.Channel.CODE, valid_days=7
    )
    kind = CouponCode.Kind.SHARED


def coupon_for(customer, template=None, *, valid_for=timedelta(days=30), **template_fields):
    """An available coupon held by ``customer`` (of ``template``, or of a new template made with
    ``template_fields``), valid from a minute ago for ``valid_for``; counted in the batch."""
    template = template or CouponTemplateFactory(**template_fields)
    now = timezone.now()
    coupon = CustomerCoupon.objects.create(
        template=template,
        customer=customer,
        source=CustomerCoupon.Source.ISSUE,
        valid_from=now - timedelta(minutes=1),
        valid_until=now + valid_for,
    )
    CouponTemplate.objects.filter(pk=template.pk).update(issued_count=F("issued_count") + 1)
    return coupon


def status_of(coupon) -> str:
    return CustomerCoupon.objects.values_list("status", flat=True).get(pk=coupon.pk)
