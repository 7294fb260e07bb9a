from django.apps import AppConfig


class GroupbuyConfig(AppConfig):
    name = "groupbuy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from groupbuy import events, link_targets, realtime, subscribers

        events.register_events()
        subscribers.register()
        realtime.register()
        link_targets.register()
