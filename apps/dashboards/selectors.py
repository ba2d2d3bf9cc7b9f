"""Reads for the dashboards pages: what the explorer's pickers offer, and saved dashboards.

Series come from `apps.metrics.selectors.series_for`, names and totals from `apps.metrics.catalogue`,
pipeline health from `apps.pipeline.selectors`.
"""

from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from apps.metrics import catalogue

from .forms import ExplorerOptions
from .models import Dashboard


def explorer_options() -> ExplorerOptions:
    """Return what the explorer's pickers offer."""
    numeric = catalogue.numeric_property_names()
    recent = catalogue.recent_property_names()
    return ExplorerOptions(
        events=catalogue.event_names(), numeric_props=numeric, properties=sorted(set(recent) | set(numeric))
    )


def default_event() -> str | None:
    """Return the event an explorer opened without parameters shows: the most frequent of the last 30
    days, else any event, else None (nothing recorded yet)."""
    recent = catalogue.top_events(start=timezone.now() - timedelta(days=30), limit=1)
    if recent:
        return recent[0].name
    return next(iter(catalogue.event_names()), None)


def dashboard_list() -> QuerySet[Dashboard]:
    """Return every saved dashboard with its owner and number of charts (one query)."""
    return Dashboard.objects.select_related("owner").annotate(n_charts=Count("charts")).order_by("name", "pk")


def dashboards_owned(*, user) -> list[Dashboard]:
    """Return the dashboards a person owns (where "save to dashboard" offers to put a chart)."""
    return list(Dashboard.objects.filter(owner=user).order_by("name", "pk"))


def dashboard_get(*, slug: str) -> Dashboard | None:
    """Return a dashboard with its owner and charts in order (two queries), or None."""
    return Dashboard.objects.select_related("owner").prefetch_related("charts").filter(slug=slug).first()
