"""A model admin that only shows: lists with filters and search, detail pages read-only, no add,
change or delete (the services own every write). Money fields (``money``, fen) are shown in yuan
through ``<field>_yuan`` displays the subclass defines (core.admin_money.yuan_display)."""

from django.contrib import admin
from django.http import HttpRequest

from core.admin_money import yuan_names


class ReadOnlyAdmin(admin.ModelAdmin):
    money: tuple[str, ...] = ()

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return yuan_names([field.name for field in self.model._meta.fields], self.money)

    def get_exclude(self, request: HttpRequest, obj=None):
        return self.money

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
