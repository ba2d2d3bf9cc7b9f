"""One INSERT … ON CONFLICT for many rows, used by ingestion (new events) and the pipeline (rollups).

On PostgreSQL the rows go in as one array per column through `unnest`: the SQL text stays the same whatever
the row count (so the driver can cache it) and no per-value preparation runs in Python. SQLite, the
embedded default, gets a multi-row VALUES list.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import JSONField, Model

SQLITE_ROWS_PER_STATEMENT = 500


def bulk_insert(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Sequence[str],
    update: str | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert rows (tuples in `columns` order); on a conflict do nothing, or run `update` ("{t}" = table).

    Return the `returning` column of the rows written, in input order where the database keeps it.
    """
    if not rows:
        return []
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in columns]
    table = qn(model._meta.db_table)
    action = "DO NOTHING" if update is None else "DO UPDATE SET " + update.format(t=table)
    conflict_sql = ", ".join(qn(model._meta.get_field(name).column) for name in conflict)
    head = f"INSERT INTO {table} ({', '.join(qn(f.column) for f in fields)}) "
    tail = f" ON CONFLICT ({conflict_sql}) {action}" + (f" RETURNING {qn(returning)}" if returning else "")
    out: list[Any] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg.types.json import Jsonb

            arrays = []
            for index, field in enumerate(fields):
                values = [row[index] for row in rows]
                if isinstance(field, JSONField):
                    values = [Jsonb(v) for v in values]
                arrays.append(values)
            casts = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
            cursor.execute(head + f"SELECT * FROM unnest({casts})" + tail, arrays)
            if returning:
                out.extend(r[0] for r in cursor.fetchall())
            return out
        placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            part = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            params = [
                f.get_db_prep_save(v, connection) for row in part for f, v in zip(fields, row, strict=True)
            ]
            cursor.execute(head + "VALUES " + ", ".join([placeholder] * len(part)) + tail, params)
            if returning:
                out.extend(r[0] for r in cursor.fetchall())
    return out
