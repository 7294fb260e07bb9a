from django.apps import AppConfig


class ReferralConfig(AppConfig):
    name = "referral"
    default_auto_field = "django.db.models.BigAutoField"
