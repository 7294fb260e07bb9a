from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from shop import events, realtime  # noqa: F401  (realtime registers the shop's topics)

        events.register_events()
