"""Template helpers for pages outside the app: whether to show the paste box in the header."""

from django import template

from apps.accounts.permissions import has_role
from apps.accounts.roles import SUPPORT

register = template.Library()


@register.filter
def can_search_traces(user) -> bool:
    """Return whether the person may search traces (support or admin): the rule of the trace pages."""
    return has_role(user, SUPPORT)
