"""Catalog writes. Products are managed in the admin; its actions call these."""

from django.db import transaction
from django.db.models import F

from core.errors import Conflict, InvalidInput, NotFound
from shop import locks
from shop.error_codes import CatalogErrorCode
from shop.models import Product, Sku
from shop.services.stock import stock_forget_short


def product_set_status(*, product_id: int, status: str) -> Product:
    """Publish (``on_sale``), withdraw (``off_sale``) or return a product to ``draft``.

    A product goes on sale only with at least one active SKU: otherwise shoppers would see an
    item with no price.
    """
    if status not in Product.Status.values:
        raise InvalidInput(
            f"Unknown product status {status!r}.", code=CatalogErrorCode.INVALID_STATUS
        )
    with transaction.atomic():
        product = locks.lock_product(product_id)
        if product is None:
            raise NotFound("This product does not exist.", code=CatalogErrorCode.PRODUCT_NOT_FOUND)
        if status == Product.Status.ON_SALE and not product.skus.filter(is_active=True).exists():
            raise Conflict(
                "A product needs at least one active SKU before it goes on sale.",
                code=CatalogErrorCode.PRODUCT_HAS_NO_SKUS,
            )
        if product.status != status:
            product.status = status
            product.save(update_fields=["status", "updated_at"])
    return product


def sku_adjust_stock(*, sku_id: int, delta: int) -> int:
    """Add ``delta`` units (negative removes) to a SKU's reservable stock in one conditional
    UPDATE, so a concurrent reservation is never overwritten; returns the new stock."""
    with transaction.atomic():
        updated = Sku.objects.filter(pk=sku_id, stock__gte=-delta).update(stock=F("stock") + delta)
        if not updated:
            sku = Sku.objects.filter(pk=sku_id).only("stock").first()
            if sku is None:
                raise NotFound("This SKU does not exist.", code=CatalogErrorCode.SKU_NOT_FOUND)
            raise Conflict(
                f"Only {sku.stock} unit(s) in stock; cannot remove {-delta}.",
                code=CatalogErrorCode.STOCK_WOULD_GO_NEGATIVE,
                details={"sku_id": sku_id, "available": sku.stock},
            )
        if delta > 0:
            stock_forget_short(sku_ids=[sku_id])  # restocked: on sale again at once
        return Sku.objects.filter(pk=sku_id).values_list("stock", flat=True).get()
