"""One INSERT … ON CONFLICT for many rows, used by ingestion (new events) and the pipeline (rollups).

On PostgreSQL `bulk_insert` sends the rows as one array per column through `unnest`: the SQL text stays the
same whatever the row count. `bulk_insert_json` sends them as one JSON document instead, encoded by msgspec
in C and taken apart by the server, so no value is adapted in Python one by one (psycopg quoting the
arrays' elements was a fifth of an ingest request). SQLite, the embedded default, gets a multi-row VALUES
list either way.
"""

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from django.db import connection, transaction
from django.db.models import Field, JSONField, Model

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
    fields = [model._meta.get_field(name) for name in columns]
    head, tail = _statement_ends(model, fields, conflict=conflict, update=update, returning=returning)
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


def bulk_insert_json(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Sequence[str],
    update: str | None = None,
    returning: str | None = None,
) -> list[Any]:
    """`bulk_insert`, with the rows sent to PostgreSQL as one JSON array of arrays in one parameter.

    Values must be what msgspec writes as the column's text form: str, int, float, bool, None, UUID, an
    aware datetime, and anything JSON for a JSONField (it goes in as is). Atomic without a transaction
    around it: one statement on PostgreSQL; elsewhere `bulk_insert` (maybe several) in a transaction.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return bulk_insert(model, columns, rows, conflict=conflict, update=update, returning=returning)
    if not rows:
        return []
    sql = json_insert_sql(model, tuple(columns), tuple(conflict), update, returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, [json_rows(rows)])
        return [r[0] for r in cursor.fetchall()] if returning else []


def json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Return the parameter of a json_insert_sql statement: the rows as one JSON array of arrays."""
    return msgspec.json.encode(rows).decode()


@functools.cache
def json_insert_sql(
    model: type[Model],
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    update: str | None,
    returning: str | tuple[str, ...] | None,
) -> str:
    """Return the INSERT … SELECT that reads each row of a JSON array of arrays (PostgreSQL only), to be
    run with json_rows; `returning` names one column or several."""
    fields = [model._meta.get_field(name) for name in columns]
    head, tail = _statement_ends(model, fields, conflict=conflict, update=update, returning=returning)
    values = ", ".join(
        f"r->{index}" if isinstance(field, JSONField) else f"(r->>{index})::{field.db_type(connection)}"
        for index, field in enumerate(fields)
    )
    return head + f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r" + tail


def _statement_ends(
    model: type[Model],
    fields: Sequence[Field],
    *,
    conflict: Sequence[str],
    update: str | None,
    returning: str | tuple[str, ...] | None,
) -> tuple[str, str]:
    """Return the INSERT's head (table and columns) and tail (ON CONFLICT, RETURNING)."""
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    action = "DO NOTHING" if update is None else "DO UPDATE SET " + update.format(t=table)
    # No conflict columns: every unique index of the table (of the partition a row goes to) decides.
    target = (
        "(" + ", ".join(qn(model._meta.get_field(name).column) for name in conflict) + ") "
        if conflict
        else ""
    )
    head = f"INSERT INTO {table} ({', '.join(qn(f.column) for f in fields)}) "
    returned = (returning,) if isinstance(returning, str) else returning or ()
    tail = f" ON CONFLICT {target}{action}" + (
        f" RETURNING {', '.join(qn(name) for name in returned)}" if returned else ""
    )
    return head, tail
