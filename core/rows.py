"""Plain INSERTs and reads of model instances, for the few queries on a hot path (checkout).

``Model.objects.create`` and ``bulk_create`` build and compile a query object on every call;
under 32 GIL-bound threads that Python time, not the database, is what a checkout costs
(PITFALLS.md, tests/bench/checkout.py). ``insert_rows`` writes the same row the ORM would: every
concrete column, each value prepared by its field exactly as ``save()`` prepares it
(``pre_save`` fills ``auto_now_add`` columns, ``get_db_prep_save`` adapts JSON and dates), in one
statement whose text is built once per model and row count. It sets the new primary keys and
marks the instances saved. It sends no ``pre_save`` / ``post_save`` signals (the project has
none, see shop/events.py) and skips ``full_clean`` like ``create`` does.

Reading: ``columns(Model, "alias")`` is the select list of every concrete column of a model (in
field order) and ``instance_from(Model, values)`` builds the instance from those values, with
each field's database converters applied (JSON text becomes data) as a queryset would; a row of
several models is sliced with ``width(Model)``. A hand-written query with joins then builds what
``select_related`` would, without compiling a queryset per call.
"""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


@cache
def _plan(model: type[models.Model]) -> tuple[list[models.Field], str]:
    """The columns ``insert_rows`` writes for ``model`` and the head of its statement."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not isinstance(f, models.AutoField)]
    if any(f.db_default is not models.NOT_PROVIDED for f in fields):
        raise TypeError(f"{meta.label}: insert_rows does not write database defaults")
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    # names come from the model, values are always parameters
    return fields, f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608


@cache
def _statement(model: type[models.Model], rows: int) -> str:
    fields, head = _plan(model)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pk = connection.ops.quote_name(model._meta.pk.column)
    return head + ", ".join([one] * rows) + f" RETURNING {pk}"


@cache
def columns(model: type[models.Model], alias: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)


@cache
def _converters(model: type[models.Model]) -> tuple[tuple[int, models.Field, Callable], ...]:
    return tuple(
        (i, field, convert)
        for i, field in enumerate(model._meta.concrete_fields)
        for convert in field.get_db_converters(connection)  # type: ignore[attr-defined]
    )


def instance_from(model: type[M], values: Sequence[object]) -> M:
    """The instance a queryset of ``model`` would build from the ``columns(model, ...)`` of a
    row (all of them, in order)."""
    if len(values) != width(model):
        raise ValueError(f"{model._meta.label}: {len(values)} values for {width(model)} columns")
    converted = list(values)
    for i, field, convert in _converters(model):
        converted[i] = convert(converted[i], field, connection)
    return model.from_db(connection.alias, (), converted)  # every column: no names needed


def insert_rows(instances: Sequence[M]) -> Sequence[M]:
    """INSERT ``instances`` (all of one model, none saved yet) in one statement; returns them
    with their primary keys set."""
    if not instances:
        return instances
    model = type(instances[0])
    if any(type(obj) is not model for obj in instances):
        raise TypeError("insert_rows writes instances of one model at a time")
    if any(not obj._state.adding for obj in instances):
        raise ValueError("insert_rows writes new rows only")
    fields, _ = _plan(model)
    params: list[Any] = []
    for obj in instances:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    with connection.cursor() as cursor:
        cursor.execute(_statement(model, len(instances)), params)
        keys = cursor.fetchall()
    pk_name = model._meta.pk.attname
    for obj, (key,) in zip(instances, keys, strict=True):
        setattr(obj, pk_name, key)
        obj._state.adding = False
        obj._state.db = connection.alias
    return instances
