"""Expressions over a JSON `properties` column that read one top-level key, on PostgreSQL and SQLite.

The name is always a key, whatever it looks like: "-1" or "0" are not array indexes and "$.a" is not a
path (Django's key transforms read such names as indexes or paths, which failed on SQLite).
"""

from django.db.models import F, FloatField, Func, TextField, Value

# Larger magnitudes are not summed: a few of them would overflow a double in the rollups (inf, then NaN).
MAX_SUMMABLE = 1e15


class PropertyText(Func):
    """The text of one top-level property of `properties` (JSON text for numbers and booleans)."""

    output_field = TextField()

    def __init__(self, name: str) -> None:
        super().__init__(F("properties"), Value(name))

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" ->> ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.get_source_expressions())
        sql = (
            "(SELECT CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL"
            f" ELSE CAST(j.value AS TEXT) END FROM json_each({column[0]}) AS j WHERE j.key = {key[0]})"
        )
        return sql, (*column[1], *key[1])


class PropertyNumber(Func):
    """A top-level property as a number when it is one of a summable size (as the rollups count it),
    else NULL: booleans, text and magnitudes above MAX_SUMMABLE are not summed."""

    output_field = FloatField()

    def __init__(self, name: str) -> None:
        super().__init__(F("properties"), Value(name))

    def as_postgresql(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.get_source_expressions())
        value = f"({column[0]} -> {key[0]})"
        # Compared as numeric, which any JSON number fits (one past a double's range, 1e400, would fail the
        # cast to float8), and cast only once it passed: CASE, unlike AND, keeps that order.
        sql = (
            f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN CASE WHEN abs(({value})::numeric) <= %s"
            f" THEN ({value})::numeric::float8 END END)"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1], MAX_SUMMABLE, *column[1], *key[1])

    def as_sqlite(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.get_source_expressions())
        sql = (
            "(SELECT CASE WHEN j.type IN ('integer', 'real') AND abs(j.value) <= %s THEN j.value END"
            f" FROM json_each({column[0]}) AS j WHERE j.key = {key[0]})"
        )
        return sql, (MAX_SUMMABLE, *column[1], *key[1])
