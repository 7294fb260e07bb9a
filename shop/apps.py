from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from shop import events, link_targets, realtime  # noqa: F401  (realtime: topics)

        events.register_events()
        link_targets.register()
