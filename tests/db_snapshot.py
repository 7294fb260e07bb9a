"""What "nothing was written" means in a test: every row of every table, before and after."""

from typing import Any

from django.db import connection


def db_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row (all columns) of every table, read with plain SQL so the snapshot follows the
    database rather than the models: inserts, updates and deletes all show up as a difference."""
    snapshot = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
            snapshot[table] = cursor.fetchall()
    return snapshot
