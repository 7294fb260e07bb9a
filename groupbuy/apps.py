from django.apps import AppConfig


class GroupbuyConfig(AppConfig):
    name = "groupbuy"
    default_auto_field = "django.db.models.BigAutoField"
