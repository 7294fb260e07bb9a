from django.conf import settings
from django.db import models
from django.db.models import Q


class Customer(models.Model):
    """A shopper, created on first WeChat login."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer"
    )
    openid = models.CharField(max_length=64, unique=True)
    unionid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    nickname = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.nickname or f"customer {self.pk}"


class Address(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    recipient_name = models.CharField(max_length=64)
    phone = models.CharField(max_length=32)
    province = models.CharField(max_length=64)
    city = models.CharField(max_length=64)
    district = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=255)
    postal_code = models.CharField(max_length=16, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(is_default=True),
                name="address_one_default_per_customer",
            )
        ]

    def __str__(self) -> str:
        return f"{self.recipient_name}, {self.city} {self.detail}"

    def snapshot(self) -> dict:
        return {
            "recipient_name": self.recipient_name,
            "phone": self.phone,
            "province": self.province,
            "city": self.city,
            "district": self.district,
            "detail": self.detail,
            "postal_code": self.postal_code,
        }


class Community(models.Model):
    """A neighbourhood group (社群) run by a community leader (团长)."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    leader = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="led_communities"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name


class CommunityMembership(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "customer"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} in community {self.community_id}"


class PickupPoint(models.Model):
    """自提点: where a community's orders are collected."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="pickup_points")
    name = models.CharField(max_length=100)
    address = models.CharField(max_length=255)
    opening_hours = models.CharField(
        max_length=200, blank=True, help_text="e.g. Mon-Sun 09:00-21:00"
    )
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.community.name}: {self.name}"
