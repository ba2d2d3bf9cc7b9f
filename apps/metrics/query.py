"""The series query language, read in one place for the API, the explorer, saved charts and the reader.

    measure    count | unique_users | sum:<property> | avg:<property>
    breakdown  "" | service | stage | event | prop:<property>
    filter     <property>=<value>

Each function returns the canonical form or raises QueryError naming the parameter and saying why.
"""

import re

MEASURES = ("count", "unique_users", "sum", "avg")
COLUMN_BREAKDOWNS = ("service", "stage", "event")
MAX_NAME = 200
MAX_FILTER_VALUE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class QueryError(ValueError):
    """A parameter of a series query is not understood; `parameter` names it, the message says why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def name(value: str, *, what: str, parameter: str) -> str:
    """Return an event or property name trimmed, or refuse it (empty, too long, control characters)."""
    value = value.strip()
    if not value:
        raise QueryError(parameter, f"Give a {what}.")
    if len(value) > MAX_NAME:
        raise QueryError(parameter, f"A {what} has at most {MAX_NAME} characters.")
    if _CONTROL.search(value):
        raise QueryError(parameter, f"A {what} may not contain control characters.")
    return value


def measure(text: str) -> tuple[str, str]:
    """Return (kind, property) of a measure; the property is "" for count and unique_users."""
    text = text.strip()
    if text in ("count", "unique_users"):
        return text, ""
    kind, sep, prop = text.partition(":")
    if kind in ("sum", "avg") and not prop.strip():
        raise QueryError("measure", f"Give a property name: {kind} needs a property, e.g. {kind}:n_results.")
    if kind not in ("sum", "avg") or not sep:
        raise QueryError(
            "measure",
            f"“{text[:80]}” is not a measure: use count, unique_users, sum:<property> or avg:<property>.",
        )
    return kind, name(prop, what="property name", parameter="measure")


def measure_text(kind: str, prop: str) -> str:
    """Return the canonical text of a measure."""
    return f"{kind}:{prop}" if prop else kind


def breakdown(text: str) -> str:
    """Return a breakdown: "", service, stage, event or prop:<property>.

    A bare name that is no column is a property (DESIGN.md's `breakdown=<prop>`); `prop:` names a property
    called like a column."""
    text = text.strip()
    if text in ("", *COLUMN_BREAKDOWNS):
        return text
    return "prop:" + name(text.removeprefix("prop:"), what="property name", parameter="breakdown")


def property_filter(text: str) -> tuple[str, str]:
    """Return (property, value) of a filter written property=value."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise QueryError("filter", f"“{text[:80]}” is not a filter: write property=value.")
    if "\x00" in value:  # no stored text holds one, and PostgreSQL refuses to compare with it
        raise QueryError("filter", "A filter's value may not contain NUL characters.")
    return name(key, what="property name", parameter="filter"), value.strip()[:MAX_FILTER_VALUE]


# --- funnels and retention ------------------------------------------------------------------------------

MIN_STEPS, MAX_STEPS = 2, 8


def funnel_steps(text: str) -> tuple[str, ...]:
    """Return a funnel's steps from comma-separated event names (2 to 8; the same name may come twice)."""
    steps = tuple(step.strip() for step in text.split(","))
    if any(not step for step in steps):
        raise QueryError("steps", "Name an event for every step (separate the names with commas).")
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise QueryError("steps", f"A funnel has {MIN_STEPS} to {MAX_STEPS} steps, not {len(steps)}.")
    return steps


def analysis_breakdown(text: str) -> str:
    """Return a funnel's breakdown: "", service, stage or prop:<property> (not event: steps are events)."""
    text = text.strip()
    if text == "event":
        raise QueryError(
            "breakdown", "A funnel's steps are events: break it down by service, stage or a property."
        )
    return breakdown(text)
