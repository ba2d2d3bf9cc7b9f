"""Template helpers: whether to show the dashboards links in the nav; what the analysis switch carries."""

from django import template
from django.http import QueryDict

from apps.accounts.permissions import has_role
from apps.accounts.roles import PRODUCT
from apps.dashboards.forms import carried_state

register = template.Library()


@register.filter
def can_read_dashboards(user) -> bool:
    """Return whether the person may open the explorer and saved dashboards (product or admin)."""
    return has_role(user, PRODUCT)


@register.filter
def carried(query: QueryDict) -> str:
    """Return what the analysis switch keeps of a page's query string: its range and filters, encoded."""
    return carried_state(query)
