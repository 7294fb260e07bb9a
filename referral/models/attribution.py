from django.conf import settings
from django.db import models
from django.db.models import F, Q

from referral.rules import MAX_PAID_LEVELS


class AttributionRule(models.Model):
    """One version of the operator's attribution rule. Versions are never edited: a change is a
    new version (``version`` one more than the last), in force from ``effective_from``; the
    version applied is stored on every attribution.

    ``model``: ``first_touch`` (the customer's first distributor, bound for good),
    ``binding`` (bound to a distributor for ``binding_days`` after their last click; another
    distributor's click inside that time does not steal the customer), ``last_touch`` (the
    latest click no older than ``click_window_days``)."""

    class Model(models.TextChoices):
        FIRST_TOUCH = "first_touch", "First touch, permanent binding"
        BINDING = "binding", "Binding valid N days after the last click"
        LAST_TOUCH = "last_touch", "Last touch within a click window"

    class SelfPurchase(models.TextChoices):
        SELF = "self", "A distributor's own order counts for themselves"
        NONE = "none", "A distributor's own order is attributed to nobody"

    version = models.PositiveIntegerField(unique=True)
    model = models.CharField(max_length=12, choices=Model.choices)
    binding_days = models.PositiveIntegerField(default=30)
    click_window_days = models.PositiveIntegerField(default=7)
    code_overrides_link = models.BooleanField(
        default=True, help_text="An exclusive code at checkout wins over any link"
    )
    self_purchase = models.CharField(
        max_length=4, choices=SelfPurchase.choices, default=SelfPurchase.SELF
    )
    effective_from = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.CheckConstraint(
                condition=Q(version__gte=1)
                & Q(binding_days__gte=1)
                & Q(binding_days__lte=3650)
                & Q(click_window_days__gte=1)
                & Q(click_window_days__lte=365),
                name="attributionrule_ranges",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} {self.model}"


class Binding(models.Model):
    """锁客: the distributor a customer is bound to (first-touch and binding models), from their
    touches as of ``last_touch_at``; kept by the attribution service under the row's lock."""

    customer = models.OneToOneField("shop.Customer", on_delete=models.CASCADE, related_name="+")
    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="bindings"
    )
    click = models.ForeignKey(
        "referral.Click", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bound_at = models.DateTimeField()
    last_touch_at = models.DateTimeField(help_text="The bound distributor's latest touch")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer_id} bound to {self.distributor_id}"


class Attribution(models.Model):
    """Who caused one paid order, under which rule version, and why: the touch that justified it
    (``click``; an exclusive code's checkout is a ``code`` click), and the upline chain at that
    moment (``ancestry``: distributor ids nearest first, the whole chain; ``levels``: the paid
    ones, at most two). Written once per order by the ``order_paid`` subscriber; later tree
    changes never rewrite it."""

    class Touch(models.TextChoices):
        CLICK = "click", "A share link's click"
        CODE = "code", "An exclusive code at checkout"
        BINDING = "binding", "The customer's binding"
        SELF = "self", "The distributor's own purchase"
        NONE = "none", "No distributor"

    order = models.OneToOneField("shop.Order", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    distributor = models.ForeignKey(
        "referral.Distributor",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="attributions",
    )
    rule = models.ForeignKey(AttributionRule, on_delete=models.PROTECT, related_name="+")
    rule_version = models.PositiveIntegerField()
    touch = models.CharField(max_length=8, choices=Touch.choices)
    reason = models.CharField(
        max_length=32, blank=True, help_text="Why no one, or why this one: a stable code"
    )
    click = models.ForeignKey(
        "referral.Click", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exclusive_code = models.ForeignKey(
        "referral.ExclusiveCode", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    link = models.ForeignKey(
        "referral.ShareLink", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ancestry = models.JSONField(default=list, blank=True)
    self_purchase = models.BooleanField(default=False)
    source = models.CharField(max_length=16, help_text="The order's source")
    goods_amount = models.BigIntegerField(help_text="What the lines paid (no shipping), fen")
    refunded_amount = models.BigIntegerField(default=0)
    paid_at = models.DateTimeField()
    attributed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_at", "-id"]
        indexes = [
            models.Index(fields=["distributor", "paid_at"], name="attribution_by_distributor"),
            models.Index(fields=["link", "paid_at"], name="attribution_by_link"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(goods_amount__gte=0)
                & Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("goods_amount")),
                name="attribution_amounts_bounded",
            ),
            models.CheckConstraint(
                condition=Q(distributor__isnull=True, touch="none")
                | Q(distributor__isnull=False) & ~Q(touch="none"),
                name="attribution_touch_matches_distributor",
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} -> {self.distributor_id}"


class AttributionLevel(models.Model):
    """A paid level of an attribution: 1 the attributed distributor, 2 their upline. Nothing
    stores a third (the check constraint is the last line of defence)."""

    attribution = models.ForeignKey(Attribution, on_delete=models.CASCADE, related_name="levels")
    level = models.PositiveSmallIntegerField()
    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="attribution_levels"
    )

    class Meta:
        ordering = ["level"]
        constraints = [
            models.UniqueConstraint(fields=["attribution", "level"], name="attributionlevel_once"),
            models.CheckConstraint(
                condition=Q(level__gte=1) & Q(level__lte=MAX_PAID_LEVELS),
                name="attributionlevel_at_most_two",
            ),
        ]
        indexes = [models.Index(fields=["distributor", "level"], name="attributionlevel_by_d")]

    def __str__(self) -> str:
        return f"{self.attribution_id} L{self.level}: {self.distributor_id}"


class AttributionRefund(models.Model):
    """A refund of an attributed order, once per shop refund (the ``order_refunded``
    subscriber is idempotent by ``refund_id``); feeds the refund-rate fraud signal."""

    attribution = models.ForeignKey(Attribution, on_delete=models.CASCADE, related_name="refunds")
    refund_id = models.BigIntegerField(unique=True)
    amount = models.BigIntegerField()
    refunded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="attributionrefund_positive")
        ]

    def __str__(self) -> str:
        return f"refund {self.refund_id} of {self.attribution_id}: {self.amount}"
