"""Query parameters of the read APIs, read strictly: a value that is not what the schema says is a 400 that
names the parameter, never a 500 and never a silent default (an empty value is refused too)."""

import re
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework import exceptions

from .timebounds import OUT_OF_RANGE, within_query_bounds

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_ASCII_DIGITS = re.compile(r"[0-9]{1,9}")


def query_time(params, name: str) -> datetime | None:
    """Return an aware UTC datetime from ISO-8601 text; None when the parameter is absent."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw.replace(" ", "+"))  # a "+" in a query string arrives as a space
    except ValueError:  # well-formed but impossible, e.g. month 13
        value = None
    if value is None:
        raise exceptions.ValidationError({name: f"{raw[:60]!r} is not an ISO-8601 date and time"})
    if value.tzinfo is None:
        raise exceptions.ValidationError({name: "give a time zone, e.g. 2026-11-26T10:00:00Z"})
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        value = None
    if value is None or not within_query_bounds(value):
        raise exceptions.ValidationError({name: f"{raw[:60]!r} {OUT_OF_RANGE}"})
    return value


def query_int(params, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Return a whole number within [minimum, maximum]; the default when the parameter is absent."""
    raw = params.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not _ASCII_DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise exceptions.ValidationError({name: f"must be a whole number from {minimum} to {maximum}"})
    return int(raw)


def query_bool(params, name: str) -> bool:
    """Return a flag: 1/true/yes/on or 0/false/no/off (any case); absent is false."""
    raw = params.get(name)
    if raw is None:
        return False
    raw = raw.lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise exceptions.ValidationError({name: "must be true or false"})
