from django.apps import AppConfig


class ReferralConfig(AppConfig):
    name = "referral"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from referral import events, link_targets, subscribers

        events.register_events()
        subscribers.register()
        link_targets.register()
