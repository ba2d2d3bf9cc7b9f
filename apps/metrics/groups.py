"""What a breakdown groups events by, and which events a group (or several) holds. One place, so series,
funnels and the users behind a point select the same rows.

A property breakdown's events without the property (or with JSON null) form a group of their own: NULL in
SQL, None in Python, `absent` in answers, labelled NONE_LABEL for people. It is never the text "(none)",
which an event may send as a value like any other.
"""

from collections.abc import Iterable

from django.db.models import Expression, F, Q

from apps.common.jsonfields import PropertyText

NONE_LABEL = "(none)"  # what people read for the group of events without the property
ALIAS = "group_value"  # the name `in_groups` and `outside_groups` filter on: alias the expression by it


def group_expression(breakdown: str) -> Expression:
    """Return the value a (canonical) breakdown groups an event by: a column, or a property's text (NULL
    when the event lacks the property)."""
    if breakdown.startswith("prop:"):
        return PropertyText(breakdown[5:])
    return F(breakdown)


def group_label(value: str | None) -> str:
    """Return what people read for a group: its value, or NONE_LABEL for the events without the property."""
    return NONE_LABEL if value is None else value


def in_groups(values: Iterable[str | None]) -> Q:
    """Return the condition "in one of these groups" on ALIAS (None: the events without the property)."""
    values = list(values)
    texts = [value for value in values if value is not None]
    condition = Q(**{f"{ALIAS}__in": texts}) if texts else Q(pk__in=[])
    if None in values:
        condition |= Q(**{f"{ALIAS}__isnull": True})
    return condition


def outside_groups(values: Iterable[str | None]) -> Q:
    """Return the condition "in none of these groups" on ALIAS: the absent group stays unless None is one
    of them (SQL's NOT IN alone would drop it: NULL is never NOT IN anything)."""
    values = list(values)
    texts = [value for value in values if value is not None]
    if None in values:
        condition = Q(**{f"{ALIAS}__isnull": False})
        return condition & ~Q(**{f"{ALIAS}__in": texts}) if texts else condition
    if not texts:
        return Q()
    return Q(**{f"{ALIAS}__isnull": True}) | ~Q(**{f"{ALIAS}__in": texts})
