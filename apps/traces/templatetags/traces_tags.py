"""Template helpers for the trace pages and pages outside the app (whether to show the paste box)."""

from dataclasses import dataclass

from django import template

from apps.accounts.permissions import has_role
from apps.accounts.roles import SUPPORT
from apps.traces import converters

register = template.Library()

# A message longer than this, or with more lines, shows its start and keeps the whole behind "show all":
# a 32 KB line or a stack trace would otherwise fill screens and slow the page's layout.
PREVIEW_CHARS = 1000
PREVIEW_LINES = 12
# Lines kept from a long message's start (its last line, where a stack trace names the exception, too).
PREVIEW_HEAD_LINES = 10
PREVIEW_LINE_CHARS = 300


@dataclass(frozen=True)
class MessagePreview:
    head: str
    chars: int
    lines: int


@register.filter
def can_search_traces(user) -> bool:
    """Return whether the person may search traces (support or admin): the rule of the trace pages."""
    return has_role(user, SUPPORT)


@register.filter
def message_preview(message: str) -> MessagePreview | None:
    """Return the start of a message too long to show whole (its first lines and its last), or None."""
    if not message:
        return None
    lines = message.split("\n")
    if len(message) <= PREVIEW_CHARS and len(lines) <= PREVIEW_LINES:
        return None
    kept = lines if len(lines) <= PREVIEW_LINES else [*lines[:PREVIEW_HEAD_LINES], "…", lines[-1]]
    kept = [line if len(line) <= PREVIEW_LINE_CHARS else line[:PREVIEW_LINE_CHARS] + "…" for line in kept]
    head = "\n".join(kept)
    if len(head) > PREVIEW_CHARS:
        head = head[:PREVIEW_CHARS] + "…"
    return MessagePreview(head=head, chars=len(message), lines=len(lines))


@register.filter
def event_href(index: int, part) -> str:
    """Return the link to a trail event's row: on this page, or on the part of the trail that lists it."""
    number = index // part.size + 1
    return f"#ev-{index}" if number == part.number else f"?{part.query}part={number}#ev-{index}"


@register.simple_tag
def id_url(name: str, value: str, **params: object) -> str:
    """Return the link to the page of an ID, the ID encoded exactly once (apps/traces/converters.py)."""
    return converters.id_url(name, value, **params)
