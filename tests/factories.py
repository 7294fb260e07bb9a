import factory
from factory.django import DjangoModelFactory

from core.models import User
from shop.models import Address, Category, Community, Customer, PickupPoint, Product, Sku


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-123")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True
    is_superuser = True


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    user = factory.SubFactory(UserFactory)
    openid = factory.Sequence(lambda n: f"openid-{n}")
    nickname = factory.Sequence(lambda n: f"shopper {n}")


class AddressFactory(DjangoModelFactory):
    class Meta:
        model = Address

    customer = factory.SubFactory(CustomerFactory)
    recipient_name = "Li Lei"
    phone = "13800000000"
    province = "Zhejiang"
    city = "Hangzhou"
    district = "Xihu"
    detail = factory.Sequence(lambda n: f"{n} Wensan Road")


class CommunityFactory(DjangoModelFactory):
    class Meta:
        model = Community

    name = factory.Sequence(lambda n: f"Community {n}")
    leader = factory.SubFactory(CustomerFactory)


class PickupPointFactory(DjangoModelFactory):
    class Meta:
        model = PickupPoint

    community = factory.SubFactory(CommunityFactory)
    name = factory.Sequence(lambda n: f"Pickup {n}")
    address = "1 Market Street"
    opening_hours = "Mon-Sun 09:00-21:00"


class CategoryFactory(DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    title = factory.Sequence(lambda n: f"Product {n}")
    category = factory.SubFactory(CategoryFactory)
    status = Product.Status.ON_SALE


class SkuFactory(DjangoModelFactory):
    class Meta:
        model = Sku

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"SKU-{n:05d}")
    price = 1990
    list_price = 2990
    stock = 100
