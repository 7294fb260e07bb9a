"""Pieces the shop admins share: running a service over selected rows, and a small form page for
actions and writes that need input (an amount, a customer) before they call a service."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.errors import ApplicationError


def run_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset,
    action: Callable[[Any], Any],
    label: str,
) -> None:
    """``action(obj)`` for each selected row in pk order; a refusal is reported per row and
    does not stop the others."""
    done = 0
    for obj in queryset.order_by("pk"):
        try:
            action(obj)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message} ({exc.code})", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{label}: {done}", messages.SUCCESS)


def form_page(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    *,
    title: str,
    form: forms.Form,
    submit: str,
    intro: Sequence[str] = (),
    action: str | None = None,
    objects: Iterable[Any] = (),
) -> TemplateResponse:
    """A form in the admin's frame. With ``action``, it posts back to the changelist as that
    action on ``objects`` (with ``apply`` set), the usual pattern for actions that ask first."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": title,
        "form": form,
        "submit": submit,
        "intro": intro,
        "action": action,
        "objects": list(objects),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/shop/service_form.html", context)
