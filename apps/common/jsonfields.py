"""Expressions over a JSON `properties` column that read one top-level key, on PostgreSQL and SQLite.

The name is always a key, whatever it looks like: "-1" or "0" are not array indexes and "$.a" is not a
path (Django's key transforms read such names as indexes or paths, which failed on SQLite).
"""

from decimal import Decimal, InvalidOperation

from django.db.models import F, FloatField, Func, TextField, Value

# Larger magnitudes are not summed: a few of them would overflow a double in the rollups (inf, then NaN).
MAX_SUMMABLE = 1e15


# The SQLite function (registered on every SQLite connection, apps.common.apps) that writes a JSON number
# as PostgreSQL's `->>` does.
NUMBER_TEXT_FUNCTION = "skywatch_json_number_text"


def json_number_text(literal: str | None) -> str | None:
    """Return a JSON number's text as PostgreSQL's jsonb writes it (its `numeric`): plain notation with
    every digit kept, no sign on zero ("1e-07" is "0.0000001", "1e16" "10000000000000000", "1.0" stays)."""
    if literal is None:
        return None
    try:
        number = Decimal(literal)
    except InvalidOperation:
        return literal
    return format(number.copy_abs() if number.is_zero() else number, "f")


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give SQLite connections `json_number_text`."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(NUMBER_TEXT_FUNCTION, 1, json_number_text, deterministic=True)


class PropertyText(Func):
    """The text of one top-level property of `properties`, the same on PostgreSQL and SQLite: a string is
    itself, a number its text as jsonb writes it, a boolean "true" or "false", null and an absent property
    NULL. What a property breakdown groups by, a filter compares with, and a purge looks for."""

    output_field = TextField()

    def __init__(self, name: str) -> None:
        super().__init__(F("properties"), Value(name))

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" ->> ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.get_source_expressions())
        # A number from its JSON text (`->`), not from CAST(value AS TEXT): that wrote 15 significant digits
        # in exponent form ("1.0e-07"; 0.30000000000000004 as "0.3"), so groups and filters differed.
        # (A key SQLite cannot address by path, one with a '"', keeps the CAST.)
        number = f"{NUMBER_TEXT_FUNCTION}({column[0]} -> j.fullkey)"
        sql = (
            "(SELECT CASE WHEN j.type = 'true' THEN 'true' WHEN j.type = 'false' THEN 'false'"
            f" WHEN j.type IN ('integer', 'real') THEN coalesce({number}, CAST(j.value AS TEXT))"
            " WHEN j.type <> 'null' THEN CAST(j.value AS TEXT)"
            f" END FROM json_each({column[0]}) AS j WHERE j.key = {key[0]})"
        )
        return sql, (*column[1], *column[1], *key[1])


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
