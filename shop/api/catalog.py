from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router
from ninja.decorators import decorate_view

from core.http import errors, micro_cache
from shop.error_codes import CatalogErrorCode
from shop.schemas.catalog import CategoryOut, ProductDetailOut, ProductPageOut
from shop.selectors import catalog as selectors

router = Router(tags=["catalog"])

MAX_ID = 2**63 - 1


@router.get(
    "/categories",
    response=list[CategoryOut],
    summary="All categories (flat, with parent ids)",
    description=(
        "Every category, flat, with its parent id (build the tree client-side). Public; read-only."
    ),
)
def category_list(request: HttpRequest):
    return selectors.categories_list()


@router.get(
    "/products",
    response=ProductPageOut,
    summary="On-sale products, newest first",
    description=(
        "Public and cached for `CATALOG_LIST_CACHE_SECONDS` (default 2 s): `sold_out` may lag "
        "that long behind a sale. The product detail shows live availability."
    ),
)
@decorate_view(micro_cache("CATALOG_LIST_CACHE_SECONDS"))
def product_list(
    request: HttpRequest,
    limit: int = Query(
        settings.NINJA_PAGINATION_PER_PAGE, ge=1, le=settings.NINJA_PAGINATION_MAX_LIMIT
    ),
    offset: int = Query(0, ge=0, le=1_000_000),
    category: str | None = Query(
        None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Category id or slug; includes its direct children",
    ),
    community: int | None = Query(
        None, ge=1, le=MAX_ID, description="Only products offered in this community (or everywhere)"
    ),
    q: str | None = Query(None, max_length=100, pattern=r"^[^\x00]*$", description="Title search"),
):
    # Paginated by hand (same shape as PagePagination): the page and its total are one query.
    page = selectors.products_public_page(
        limit=limit, offset=offset, category=category, community_id=community, q=q
    )
    return ProductPageOut(items=page.items, count=page.count, limit=limit, offset=offset)


@router.get(
    "/products/{product_id}",
    response=ProductDetailOut,
    summary="An on-sale product with its SKUs and live availability",
    description=(
        "An on-sale product with its SKUs, prices and live stock. Public; read-only. A product "
        "that does not exist or is not on sale is 404 `product_not_found`."
    ),
)
@errors(CatalogErrorCode.PRODUCT_NOT_FOUND)
def product_detail(request: HttpRequest, product_id: int):
    return selectors.product_public_detail(product_id=product_id)
