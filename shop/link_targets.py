"""The link targets the shop owns (core/link_targets.py): a product, a flash sale session, the
shop's home page."""

from django.utils import timezone

from core.link_targets import LinkTarget, register_target


def _product(ident: int | None) -> LinkTarget | None:
    from shop.models import Product

    if ident is None:
        return None
    product = Product.objects.filter(pk=ident).only("title", "status").first()
    if product is None or product.status == Product.Status.DRAFT:
        return None
    return LinkTarget(
        kind="product",
        id=ident,
        path=f"pages/product/detail?id={ident}",
        title=product.title,
        live=product.status == Product.Status.ON_SALE,
    )


def _flash_session(ident: int | None) -> LinkTarget | None:
    from shop.models import FlashSession

    if ident is None:
        return None
    session = FlashSession.objects.filter(pk=ident, is_published=True).first()
    if session is None:
        return None
    return LinkTarget(
        kind="flash_session",
        id=ident,
        path=f"pages/flash/session?id={ident}",
        title=session.title,
        live=timezone.now() < session.ends_at,
    )


def _shop(ident: int | None) -> LinkTarget:
    return LinkTarget(kind="shop", id=None, path="pages/index/index", title="Shop", live=True)


def register() -> None:
    register_target("product", _product)
    register_target("flash_session", _flash_session)
    register_target("shop", _shop, needs_id=False)
