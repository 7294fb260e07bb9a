"""Yuan in the admin: fen shown as yuan with two decimals, yuan typed in parsed exactly."""

import pytest
from django import forms
from hypothesis import given
from hypothesis import strategies as st

from core.admin_money import (
    MAX_FEN,
    YuanField,
    fen_to_yuan,
    format_yuan,
    parse_yuan,
)


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_fen_to_yuan_text_and_back_is_exact(fen):
    assert parse_yuan(fen_to_yuan(fen)) == fen


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_the_text_always_has_exactly_two_decimals(fen):
    whole, _, cents = fen_to_yuan(fen).partition(".")
    assert len(cents) == 2
    assert int(whole) * 100 + int(cents) == fen


@pytest.mark.parametrize(
    ("fen", "text", "shown"),
    [
        (0, "0.00", "¥0.00"),
        (1, "0.01", "¥0.01"),
        (10, "0.10", "¥0.10"),
        (1234, "12.34", "¥12.34"),
        (199000, "1990.00", "¥1990.00"),
    ],
)
def test_known_values(fen, text, shown):
    assert fen_to_yuan(fen) == text
    assert format_yuan(fen) == shown


def test_nothing_is_shown_for_no_amount():
    assert format_yuan(None) is None


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.34", 1234),
        ("12.3", 1230),
        ("12", 1200),
        ("0", 0),
        ("0.01", 1),
        (" 12.34 ", 1234),
        ("¥12.34", 1234),
        ("007.50", 750),
        # more digits than a float can hold exactly: Decimal keeps every fen
        ("90071992547409.93", 9007199254740993),
    ],
)
def test_accepted_input(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "12.345",  # more than two decimals: refused, never rounded
        "0.001",
        "-1",
        "-0.01",
        "+1",
        "1e3",
        "1E3",
        "abc",
        "",
        " ",
        "12.",
        ".5",
        "1,000",
        "1 000",
        "NaN",
        "Infinity",
        "0x10",
        "\uff11\uff12",  # full-width digits
        "12.3.4",
        "¥",
        "¥-1",
    ],
)
def test_refused_input(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


def test_an_amount_too_large_to_store_is_refused():
    assert parse_yuan(fen_to_yuan(MAX_FEN)) == MAX_FEN
    with pytest.raises(ValueError):
        parse_yuan(fen_to_yuan(MAX_FEN + 1))


class PriceForm(forms.Form):
    price = YuanField()
    list_price = YuanField(required=False)


def test_the_form_field_cleans_yuan_to_fen():
    form = PriceForm(data={"price": "19.90", "list_price": ""})

    assert form.is_valid(), form.errors
    assert form.cleaned_data == {"price": 1990, "list_price": None}
    assert type(form.cleaned_data["price"]) is int


@pytest.mark.parametrize("text", ["12.345", "-1", "1e3", "abc"])
def test_the_form_field_reports_bad_input_as_a_form_error(text):
    form = PriceForm(data={"price": text})

    assert not form.is_valid()
    assert list(form.errors) == ["price"]
    assert "yuan" in form.errors["price"][0]


def test_the_form_field_requires_a_value_unless_told_otherwise():
    form = PriceForm(data={"price": ""})

    assert not form.is_valid()
    assert form.errors["price"] == ["This field is required."]


def test_the_input_shows_the_stored_fen_as_yuan():
    form = PriceForm(initial={"price": 1990, "list_price": None})

    html = str(form["price"])
    assert 'value="19.90"' in html
    assert "value=" not in str(form["list_price"])


def test_the_input_shows_back_what_was_typed_when_it_was_refused():
    form = PriceForm(data={"price": "12.345"})
    form.is_valid()

    assert 'value="12.345"' in str(form["price"])


def test_an_unchanged_amount_is_not_reported_as_changed():
    assert not PriceForm(data={"price": "19.9"}, initial={"price": 1990}).has_changed()
    assert PriceForm(data={"price": "19.91"}, initial={"price": 1990}).has_changed()
