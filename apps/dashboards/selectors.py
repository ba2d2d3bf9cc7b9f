"""Reads for the dashboards pages: what the explorer's pickers offer, and saved dashboards.

Series come from `apps.metrics.selectors.series_for`, names and totals from `apps.metrics.catalogue`,
pipeline health from `apps.pipeline.selectors`.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.metrics import catalogue

from .forms import ExplorerOptions
from .models import Dashboard

PICKER_EVENTS = 100  # the event picker lists the busiest of the last 30 days; any other is found by name


def explorer_options() -> ExplorerOptions:
    """Return what the explorer's pickers offer: the busiest events of the last 30 days (any other is found
    by name), numeric properties, and the property names of recent events; each says what it leaves out."""
    numeric = catalogue.numeric_property_names()
    recent = catalogue.recent_property_names_page()
    busiest = catalogue.busiest_event_names(start=_picker_since(), limit=PICKER_EVENTS)
    return ExplorerOptions(
        events=busiest.names,
        events_total=busiest.total,
        numeric_props=numeric,
        properties=sorted(set(recent.names) | set(numeric)),
        properties_cut=recent.total > len(recent.names),
    )


def _picker_since():
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)


def default_event() -> str | None:
    """Return the event an explorer opened without parameters shows: the most frequent of the last 30
    days, else any event, else None (nothing recorded yet)."""
    recent = catalogue.top_events(start=timezone.now() - timedelta(days=30), limit=1)
    if recent:
        return recent[0].name
    return next(iter(catalogue.event_names()), None)


def dashboard_list(*, named: str = "") -> QuerySet[Dashboard]:
    """Return every saved dashboard (those whose name contains `named`, any case) with its owner and number
    of charts (one query)."""
    boards = Dashboard.objects.select_related("owner").annotate(n_charts=Count("charts"))
    boards = boards.order_by("name", "pk")
    if "\x00" in named:  # no name holds one, and PostgreSQL refuses to compare with it
        return boards.none()
    return boards.filter(name__icontains=named) if named else boards


@dataclass(frozen=True)
class DashboardCounts:
    mine: int
    others: int


def dashboards_counted(dashboards: QuerySet[Dashboard], *, owner) -> DashboardCounts:
    """Return how many of `dashboards` a person owns and how many others do (one query)."""
    counts = dashboards.order_by().aggregate(
        mine=Count("pk", filter=Q(owner=owner)), others=Count("pk", filter=~Q(owner=owner))
    )
    return DashboardCounts(mine=counts["mine"], others=counts["others"])


def dashboards_owned(*, user) -> list[Dashboard]:
    """Return the dashboards a person owns (where "save to dashboard" offers to put a chart)."""
    return list(Dashboard.objects.filter(owner=user).order_by("name", "pk"))


def dashboard_get(*, slug: str) -> Dashboard | None:
    """Return a dashboard with its owner and charts in order (two queries), or None."""
    return Dashboard.objects.select_related("owner").prefetch_related("charts").filter(slug=slug).first()
