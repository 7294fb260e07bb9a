from django.db import models
from django.db.models import F, Q


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    sort_order = models.IntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ON_SALE = "on_sale", "On sale"
        OFF_SALE = "off_sale", "Off sale"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    images = models.JSONField(default=list, blank=True, help_text="List of image URLs")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    purchase_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most units one customer may buy in total (blank: no limit)",
    )
    is_promotional = models.BooleanField(
        default=False,
        help_text="Promotional (seeding) content: the API labels it as an advertisement",
    )
    communities = models.ManyToManyField(
        "shop.Community",
        blank=True,
        related_name="products",
        help_text="Offered only in these communities (none: everywhere)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title


class Sku(models.Model):
    """A sellable variant. ``stock`` is what can still be reserved: reserving decrements it,
    releasing a reservation puts it back, paying commits the reservation (stock unchanged)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="skus")
    code = models.CharField(max_length=64, unique=True)
    attributes = models.JSONField(default=dict, blank=True, help_text='e.g. {"size": "500g"}')
    price = models.BigIntegerField(help_text="Price in minor units (fen)")
    list_price = models.BigIntegerField(null=True, blank=True, help_text="Crossed-out price in fen")
    stock = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="sku_stock_non_negative"),
            models.CheckConstraint(condition=Q(price__gte=0), name="sku_price_non_negative"),
            models.CheckConstraint(
                condition=Q(list_price__isnull=True) | Q(list_price__gte=F("price")),
                name="sku_list_price_not_below_price",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.title} [{self.code}]"
