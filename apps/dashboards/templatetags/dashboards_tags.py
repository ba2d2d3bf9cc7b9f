"""Template helpers for pages outside the app: whether to show the dashboards links in the nav."""

from django import template

from apps.accounts.permissions import has_role
from apps.accounts.roles import PRODUCT

register = template.Library()


@register.filter
def can_read_dashboards(user) -> bool:
    """Return whether the person may open the explorer and saved dashboards (product or admin)."""
    return has_role(user, PRODUCT)
