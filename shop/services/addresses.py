"""A customer's delivery addresses.

Invariant: when a customer has any address, exactly one is the default. Every write that can
change which address is the default first locks the customer's row, so concurrent requests of
one customer run one after the other; the partial unique constraint
``address_one_default_per_customer`` is the backstop that makes two defaults impossible.
"""

from django.db import transaction

from core.errors import Conflict
from shop import locks
from shop.error_codes import CustomerErrorCode
from shop.models import Address, Customer
from shop.selectors.customers import address_of

ADDRESS_LIMIT = 20

ADDRESS_FIELDS = (
    "recipient_name",
    "phone",
    "province",
    "city",
    "district",
    "detail",
    "postal_code",
)


def _lock_customer(customer: Customer) -> None:
    locks.lock_customer(customer.pk)


def _make_default(address: Address) -> None:
    # Unset the previous default first: the unique constraint is checked per statement.
    Address.objects.filter(customer_id=address.customer_id, is_default=True).exclude(
        pk=address.pk
    ).update(is_default=False)
    if not address.is_default:
        address.is_default = True
        address.save(update_fields=["is_default"])


def address_create(
    *,
    customer: Customer,
    recipient_name: str,
    phone: str,
    province: str,
    city: str,
    detail: str,
    district: str = "",
    postal_code: str = "",
    is_default: bool = False,
) -> Address:
    """Add an address; the customer's first address becomes the default whatever was asked."""
    with transaction.atomic():
        _lock_customer(customer)
        existing = Address.objects.filter(customer=customer)
        if existing.count() >= ADDRESS_LIMIT:
            raise Conflict(
                f"At most {ADDRESS_LIMIT} addresses; delete one first.",
                code=CustomerErrorCode.ADDRESS_LIMIT_REACHED,
                details={"limit": ADDRESS_LIMIT},
            )
        has_default = existing.filter(is_default=True).exists()
        address = Address.objects.create(
            customer=customer,
            recipient_name=recipient_name,
            phone=phone,
            province=province,
            city=city,
            district=district,
            detail=detail,
            postal_code=postal_code,
        )
        if is_default or not has_default:
            _make_default(address)
    return address


def address_update(
    *,
    customer: Customer,
    address_id: int,
    recipient_name: str,
    phone: str,
    province: str,
    city: str,
    detail: str,
    district: str = "",
    postal_code: str = "",
    is_default: bool = False,
) -> Address:
    """Replace an address's fields. ``is_default=True`` makes it the default; ``False`` never
    unsets the current default (there must always be one: choose another address instead)."""
    with transaction.atomic():
        _lock_customer(customer)
        address = address_of(customer=customer, address_id=address_id)
        address.recipient_name = recipient_name
        address.phone = phone
        address.province = province
        address.city = city
        address.district = district
        address.detail = detail
        address.postal_code = postal_code
        address.save(update_fields=list(ADDRESS_FIELDS))
        if is_default:
            _make_default(address)
    return address


def address_set_default(*, customer: Customer, address_id: int) -> Address:
    with transaction.atomic():
        _lock_customer(customer)
        address = address_of(customer=customer, address_id=address_id)
        _make_default(address)
    return address


def address_delete(*, customer: Customer, address_id: int) -> Address | None:
    """Delete an address; when it was the default, the most recent remaining one takes over.
    Returns the new default (if the default changed), else None."""
    with transaction.atomic():
        _lock_customer(customer)
        address = address_of(customer=customer, address_id=address_id)
        was_default = address.is_default
        address.delete()
        if not was_default:
            return None
        successor = Address.objects.filter(customer=customer).order_by("-created_at", "-id").first()
        if successor is not None:
            _make_default(successor)
        return successor
