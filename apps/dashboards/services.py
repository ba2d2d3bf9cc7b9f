"""Writes for saved dashboards: create, add a chart, arrange, remove. Who may do it is the view's check.

Every change to a dashboard or its charts first locks the dashboard's row, so that changes made at once by
two people (or two tabs) run one after the other, in one lock order, and one that finds the dashboard or
the chart deleted meanwhile says so (`Gone`) instead of writing to what is no longer there.
"""

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.http import Http404
from django.utils.text import slugify

from .models import Chart, Dashboard

MAX_SLUG = 140


class Gone(Http404):
    """The dashboard or the chart was deleted meanwhile (by someone else): answered as 404 by a view."""


def _dashboard_lock(pk: int) -> Dashboard:
    """Return the dashboard locked until the transaction ends; raise Gone when it was deleted."""
    dashboard = Dashboard.objects.select_for_update().filter(pk=pk).first()
    if dashboard is None:
        raise Gone("This dashboard was deleted meanwhile.")
    return dashboard


def _slug_candidates(name: str):
    base = (slugify(name) or "dashboard")[: MAX_SLUG - 8].strip("-") or "dashboard"
    yield base
    for n in range(2, 1000):
        yield f"{base}-{n}"


@transaction.atomic
def dashboard_create(*, name: str, owner) -> Dashboard:
    """Create a dashboard with a unique slug made from its name ("Search usage" → "search-usage-2")."""
    taken = set(
        Dashboard.objects.filter(slug__startswith=(slugify(name) or "dashboard")[:40]).values_list(
            "slug", flat=True
        )
    )
    for slug in _slug_candidates(name):
        if slug in taken:
            continue
        try:
            with transaction.atomic():  # a concurrent create may take the slug first: try the next one
                return Dashboard.objects.create(name=name, slug=slug, owner=owner)
        except IntegrityError:
            continue
    raise ValueError(f"no free slug for {name!r}")


@transaction.atomic
def chart_add(*, dashboard: Dashboard, title: str, query_string: str) -> Chart:
    """Append a chart to a dashboard (Gone when it was deleted meanwhile)."""
    dashboard = _dashboard_lock(dashboard.pk)
    last = dashboard.charts.aggregate(last=Max("position"))["last"]
    chart = Chart.objects.create(
        dashboard=dashboard, title=title, query_string=query_string, position=0 if last is None else last + 1
    )
    dashboard.save(update_fields=["updated_at"])
    return chart


@transaction.atomic
def chart_move(*, chart: Chart, direction: str) -> None:
    """Move a chart one place up or down its dashboard (positions are renumbered 0..n-1)."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be up or down, not {direction!r}")
    dashboard = _dashboard_lock(chart.dashboard_id)
    charts = list(dashboard.charts.order_by("position", "pk"))
    index = next((i for i, c in enumerate(charts) if c.pk == chart.pk), None)
    if index is None:
        raise Gone("This chart was removed meanwhile.")
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(charts):
        charts[index], charts[other] = charts[other], charts[index]
    for position, item in enumerate(charts):
        item.position = position
    Chart.objects.bulk_update(charts, ["position"])
    dashboard.save(update_fields=["updated_at"])


@transaction.atomic
def chart_remove(*, chart: Chart) -> None:
    """Remove a chart from its dashboard (a chart removed meanwhile stays removed; Gone when the dashboard
    was deleted)."""
    dashboard = _dashboard_lock(chart.dashboard_id)
    Chart.objects.filter(pk=chart.pk).delete()
    dashboard.save(update_fields=["updated_at"])


@transaction.atomic
def dashboard_delete(*, dashboard: Dashboard) -> None:
    """Delete a dashboard and all its charts, those added until now included (deleted already: a no-op)."""
    try:
        _dashboard_lock(dashboard.pk).delete()
    except Gone:
        pass
