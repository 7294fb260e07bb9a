"""Money in the admin: stored as integer fen, shown and typed as yuan.

Lists and read-only views show ``¥12.34`` (:func:`yuan_display`); inputs show ``12.34`` and parse
what the operator types exactly (:class:`YuanField`): digits, optionally a point and one or two
decimals, optionally a leading ``¥``. Anything else (a third decimal, a sign, an exponent,
thousands separators) is a form error, never rounded or guessed at. No floats anywhere.
"""

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.forms.utils import pretty_name

MAX_FEN = 2**63 - 1  # the largest BigIntegerField value
_YUAN = re.compile(r"¥?([0-9]+(?:\.[0-9]{1,2})?)", re.ASCII)


def fen_to_yuan(fen: int) -> str:
    """``1234 -> "12.34"``: always two decimals."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_yuan(fen: int | None) -> str | None:
    """``1234 -> "¥12.34"``; ``None`` stays ``None`` (the admin shows its empty value)."""
    if fen is None:
        return None
    text = fen_to_yuan(fen)
    return f"-¥{text[1:]}" if text.startswith("-") else f"¥{text}"


def parse_yuan(text: str) -> int:
    """``"12.34" -> 1234`` exactly; ``ValueError`` for anything that is not a non-negative amount
    of yuan with at most two decimals that fits the database column."""
    match = _YUAN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an amount of yuan: {text!r}")
    fen = int(Decimal(match.group(1)).scaleb(2))
    if fen > MAX_FEN:
        raise ValueError(f"too large: {text!r}")
    return fen


class YuanInput(forms.TextInput):
    """Shows a fen value as yuan; what was typed (a string) is shown back unchanged."""

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, int):
            return fen_to_yuan(value)
        return super().format_value(value)


class YuanField(forms.Field):
    """A money form field: yuan in, fen (``int``) out; empty is ``None`` when not required."""

    widget = YuanInput
    default_error_messages = {
        "invalid": "Enter an amount in yuan with at most two decimals, e.g. 12.34.",
    }

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int):
            return value
        try:
            return parse_yuan(str(value))
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def widget_attrs(self, widget: forms.Widget) -> dict[str, str]:
        return {**super().widget_attrs(widget), "inputmode": "decimal", "placeholder": "0.00"}


def yuan_display(field: str, description: str | None = None) -> Callable[[Any, Any], str | None]:
    """An admin column / read-only field showing ``obj.<field>`` (fen) as ``¥12.34``.

    Use it as a ModelAdmin attribute, e.g. ``total_yuan = yuan_display("total")``, and name
    ``"total_yuan"`` in ``list_display`` / ``readonly_fields``.
    """

    @admin.display(description=description or pretty_name(field), ordering=field)
    def display(modeladmin: Any, obj: Any) -> str | None:
        return format_yuan(getattr(obj, field))

    display.__name__ = f"{field}_yuan"
    return display


def yuan_names(fields: list[str], money: tuple[str, ...]) -> list[str]:
    """``fields`` with each money field replaced by its ``<name>_yuan`` display."""
    return [f"{name}_yuan" if name in money else name for name in fields]
