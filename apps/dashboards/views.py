"""Pages for product: the overview, the chart explorer (state in the URL), saved and shared dashboards."""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.accounts.permissions import has_role, role_required
from apps.accounts.roles import PRODUCT, SUPPORT
from apps.metrics import catalogue
from apps.metrics.query import MAX_NAME
from apps.metrics.retention import RetentionQueryError
from apps.metrics.selectors import SeriesQueryError
from apps.pipeline.selectors import pipeline_health

from . import overview as overview_content
from . import selectors, services
from .analyses import (
    AnalysisForm,
    analysis_of,
    analysis_render,
    analysis_spec,
    funnel_rows,
    retention_rows,
    write_analysis_csv,
)
from .analyses import query_string as analysis_query_string
from .charts import RenderedChart, chart_render, charts_annotate, saved_chart_card, saved_chart_render
from .chartspec import QUICK_RANGES, chart_spec
from .chartspec import query_string as chart_query_string
from .csp import inline_styles_allowed
from .forms import CARRIED, MAX_QUERY_STRING, DashboardCreateForm, ExplorerForm, SaveChartForm
from .models import Chart, Dashboard
from .tables import write_series_csv

DASHBOARD_RANGES = {k: v[0] for k, v in QUICK_RANGES.items() if k != "custom"}
DASHBOARDS_PER_PAGE = 50  # each list of the dashboards page (yours, others'), a page at a time
NAME_SEARCH_LIMIT = 20  # names one search-as-you-type answer holds (it says when there are more)
SAVE_DRAFT = "dashboards.save_draft"  # the session key of a refused save's input (see _save_form)


@require_safe
@login_required
@inline_styles_allowed
def overview(request: HttpRequest) -> HttpResponse:
    """Show usage at a glance (product and admin), the pipeline's health (everyone signed in) and the
    correlation coverage of each service (support and admin); annotations on the time-series charts."""
    now = timezone.now()
    health = pipeline_health(now=now)
    context = {
        "tiles": overview_content.health_tiles(health),
        "ingest_figure": overview_content.ingest_rate_figure(health),
        "ingest_table": overview_content.ingest_rate_table(health),
        "is_product": has_role(request.user, PRODUCT),
        "is_support": has_role(request.user, SUPPORT),
    }
    if context["is_product"]:
        context["usage"] = overview_content.product_usage(now=now)
        context["top_services"] = overview_content.TOP_SERVICES
    if context["is_product"] or context["is_support"]:
        overview_content.overview_annotate(
            usage=context.get("usage"), ingest_figure=context["ingest_figure"], now=now
        )
    if context["is_support"]:
        context["coverage"] = overview_content.coverage_last_day(now=now)
        context["coverage_threshold"] = overview_content.COVERAGE_THRESHOLD_PERCENT
    return render(request, "dashboards/overview.html", context)


@role_required(PRODUCT)
@require_safe
@inline_styles_allowed
def explorer(request: HttpRequest) -> HttpResponse:
    """Draw the chart the query string describes; `format=csv` downloads its series instead."""
    if analysis_of(request.GET) != "trends":
        return analysis_explorer(request)
    wants_csv = request.GET.get("format") == "csv"
    options = None if wants_csv else selectors.explorer_options()
    if set(request.GET) - {"format"} - set(CARRIED):
        data = request.GET
    else:  # opened bare, or from another analysis with its range and filters (CARRIED)
        default_event = selectors.default_event()
        if default_event is None:
            return render(request, "dashboards/explorer.html", {"form": ExplorerForm(), "no_events": True})
        data = ExplorerForm.default_data(events=[default_event], carried=request.GET)
    form = ExplorerForm(data, options=options)
    chart = None
    if form.is_valid():
        try:
            chart = chart_render(chart_spec(form.settings(), now=timezone.now()))
        except SeriesQueryError as exc:  # a limit of the series reader, said in its words
            form.add_error(None, f"{str(exc).capitalize()}.")
    if chart is None:
        if wants_csv:
            return HttpResponse(
                "These chart settings are invalid:\n" + form.errors.as_text(),
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        return render(request, "dashboards/explorer.html", {"form": form}, status=400)
    query_string = chart_query_string(form.settings())
    if wants_csv:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"skywatch-{slugify(chart.spec.title)[:80]}-{timezone.now():%Y%m%d-%H%M}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        write_series_csv(chart.series, response)
        return response
    charts_annotate([chart])
    save_form = _save_form(request, title=chart.spec.title, query_string=query_string)
    context = {"form": form, "chart": chart, "query_string": query_string, "save_form": save_form}
    return render(request, "dashboards/explorer.html", context)


@role_required(PRODUCT)
@require_safe
def event_names_search(request: HttpRequest) -> JsonResponse:
    """Answer the event names containing `q` (any case) for the pickers' search-as-you-type: at most
    NAME_SEARCH_LIMIT, sorted, and `more` when there are others."""
    text = request.GET.get("q", "").strip()[:MAX_NAME]
    if not text:
        return JsonResponse({"names": [], "more": False})
    found = catalogue.event_names_matching(text=text, limit=NAME_SEARCH_LIMIT)
    return JsonResponse({"names": found.names, "more": found.total > len(found.names)})


def analysis_explorer(request: HttpRequest) -> HttpResponse:
    """Draw the funnel or retention table the query string describes (the explorer's other analyses);
    `format=csv` downloads its numbers instead."""
    wants_csv = request.GET.get("format") == "csv"
    options = None if wants_csv else selectors.explorer_options()
    analysis = request.GET["analysis"]
    if not wants_csv and set(request.GET) - {"analysis"} <= set(CARRIED):
        # Opened from the analysis switch: the empty form, with its defaults and the range and filters the
        # other analysis had, and a word on what to fill in.
        initial = {"analysis": analysis, "range": "30d", "window": 86400}
        initial.update({key: request.GET[key] for key in ("range", "start", "end") if request.GET.get(key)})
        if request.GET.getlist("filter"):
            initial["filter"] = request.GET.getlist("filter")
        form = AnalysisForm(initial=initial, options=options)
        return render(
            request, "dashboards/analysis.html", {"form": form, "analysis": analysis, "fresh": True}
        )
    form = AnalysisForm(request.GET, options=options)
    rendered = None
    if form.is_valid():
        try:
            rendered = analysis_render(analysis_spec(form.settings(), now=timezone.now()))
        except RetentionQueryError as exc:
            form.add_error(None, f"{str(exc).capitalize()}.")
    if rendered is None:
        if wants_csv:
            return HttpResponse(
                "These settings are invalid:\n" + form.errors.as_text(),
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        return render(request, "dashboards/analysis.html", {"form": form, "analysis": analysis}, status=400)
    query_string = analysis_query_string(form.settings())
    if wants_csv:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"skywatch-{slugify(rendered.spec.title)[:80]}-{timezone.now():%Y%m%d-%H%M}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        write_analysis_csv(rendered, response)
        return response
    save_form = _save_form(request, title=rendered.spec.title, query_string=query_string)
    context = {
        "form": form,
        "analysis": analysis,
        "chart": rendered,
        "query_string": query_string,
        "save_form": save_form,
    }
    if rendered.funnel is not None:
        context["funnel_rows"] = funnel_rows(rendered.funnel, rendered.spec.query)
    else:
        context["retention_rows"] = retention_rows(rendered.retention)
        cohorts = rendered.retention.cohorts
        context["offsets"] = range(len(cohorts[0].values) if cohorts else 0)
    return render(request, "dashboards/analysis.html", context)


def _save_form(request: HttpRequest, *, title: str, query_string: str) -> SaveChartForm:
    """Return the page's save form: what the person typed in a save just refused for this chart, else the
    chart's title."""
    dashboards = selectors.dashboards_owned(user=request.user)
    draft = request.session.pop(SAVE_DRAFT, None) if SAVE_DRAFT in request.session else None
    if isinstance(draft, dict) and draft.get("query_string") == query_string:
        return SaveChartForm(draft, dashboards=dashboards)
    return SaveChartForm(initial={"title": title, "query_string": query_string}, dashboards=dashboards)


@role_required(PRODUCT)
@require_POST
def chart_save(request: HttpRequest) -> HttpResponse:
    """Save the explorer's chart to one of the person's dashboards, or to a new one."""
    form = SaveChartForm(request.POST, dashboards=selectors.dashboards_owned(user=request.user))
    if form.is_valid():
        data = form.cleaned_data
        dashboard = form.target() or services.dashboard_create(name=data["new_name"], owner=request.user)
        try:
            services.chart_add(dashboard=dashboard, title=data["title"], query_string=data["query_string"])
        except services.Gone:
            form.add_error("dashboard", f"The dashboard “{dashboard.name}” was deleted meanwhile.")
    if not form.is_valid():
        problems = " ".join(msg for msgs in form.errors.values() for msg in msgs)
        messages.error(request, f"The chart was not saved. {problems}")
        # What the person typed comes back in the save form of the page they return to (_save_form).
        request.session[SAVE_DRAFT] = {name: request.POST.get(name, "")[:20_000] for name in form.fields}
        # Back to the chart, unless its state is too long for a link the server takes (then the bare page).
        state = request.POST.get("query_string", "")
        return redirect(
            reverse("dashboard-explorer") + ("?" + state if len(state) <= MAX_QUERY_STRING else "")
        )
    messages.success(request, f"Saved “{data['title']}” to the dashboard “{dashboard.name}”.")
    return redirect("dashboard-detail", slug=dashboard.slug)


@role_required(PRODUCT)
@require_http_methods(["GET", "HEAD", "POST"])
def dashboard_list(request: HttpRequest) -> HttpResponse:
    """List every saved dashboard (anyone with the product role may read them); create an empty one."""
    form = DashboardCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        dashboard = services.dashboard_create(name=form.cleaned_data["name"], owner=request.user)
        messages.success(request, f"Created “{dashboard.name}”. Add charts from the explorer.")
        return redirect("dashboard-detail", slug=dashboard.slug)
    named = request.GET.get("q", "").strip()[:120]
    dashboards = selectors.dashboard_list(named=named)
    counts = selectors.dashboards_counted(dashboards, owner=request.user)
    mine = _list_page(request, dashboards.filter(owner=request.user), counts.mine, "mine_page")
    others = _list_page(request, dashboards.exclude(owner=request.user), counts.others, "others_page")
    context = {
        "mine": list(mine.page.object_list),
        "mine_pager": mine,
        "others": list(others.page.object_list),
        "others_pager": others,
        "form": form,
        "named": named,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboards/list.html", context, status=status)


class _CountedPaginator(Paginator):
    """A paginator told its count (one query counts both lists of the dashboards page)."""

    def __init__(self, object_list, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.__dict__["count"] = count  # Paginator.count is a cached property


@dataclass(frozen=True)
class _ListPage:
    """One page of a dashboards list and the addresses of the pages beside it ("" when none)."""

    page: Page
    previous_url: str
    next_url: str


def _list_page(request: HttpRequest, dashboards, count: int, parameter: str) -> _ListPage:
    """Return one page of a dashboards list of `count` (`parameter` names its page in the URL); the links
    to the pages beside it keep the other list's page and the name searched for."""
    page = _CountedPaginator(dashboards, DASHBOARDS_PER_PAGE, count=count).get_page(
        request.GET.get(parameter)
    )

    def link(number: int) -> str:
        params = request.GET.copy()
        params[parameter] = str(number)
        return "?" + params.urlencode()

    return _ListPage(
        page=page,
        previous_url=link(page.previous_page_number()) if page.has_previous() else "",
        next_url=link(page.next_page_number()) if page.has_next() else "",
    )


@role_required(PRODUCT)
@require_safe
@inline_styles_allowed
def dashboard_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Show a saved dashboard's charts, each as a card its script fills from the chart's own URL
    (dashboard_chart): the page answers at once, whatever its charts' queries cost. `range` shows them all
    over another range."""
    dashboard = selectors.dashboard_get(slug=slug)
    if dashboard is None:
        raise Http404("No dashboard has this address.")
    range_override = _range_override(request.GET)
    charts = [saved_chart_card(chart, range_override=range_override) for chart in dashboard.charts.all()]
    context = {
        "dashboard": dashboard,
        "charts": charts,
        "can_edit": dashboard.editable_by(request.user),
        "share_url": request.build_absolute_uri(reverse("dashboard-detail", args=[dashboard.slug])),
        "ranges": DASHBOARD_RANGES,
        "range_override": range_override,
    }
    return render(request, "dashboards/detail.html", context)


@role_required(PRODUCT)  # exactly the dashboard page's: whoever may read a dashboard may read its charts
@require_safe
@inline_styles_allowed
def dashboard_chart(request: HttpRequest, slug: str, chart_id: int) -> HttpResponse:
    """Draw one chart of a saved dashboard, freshly computed: `part=figure` answers the fragment the
    dashboard page puts in the chart's card, else a page of its own (the card's link without JavaScript).
    A chart that cannot be read for want of the database answers 503, with its message."""
    chart = get_object_or_404(
        Chart.objects.select_related("dashboard"), pk=chart_id, dashboard__slug=slug
    )  # another dashboard's chart is not found here
    range_override = _range_override(request.GET)
    item = saved_chart_render(chart, range_override=range_override)
    # Markers belong on time axes: a funnel or a retention table has none.
    if isinstance(item.rendered, RenderedChart):
        charts_annotate([item.rendered])
    unavailable = item.rendered is None and not item.settings_invalid
    status = 503 if unavailable else 200
    if request.GET.get("part") == "figure":
        return render(request, "dashboards/_saved_chart_figure.html", {"item": item}, status=status)
    context = {"dashboard": chart.dashboard, "item": item, "range_override": range_override}
    return render(request, "dashboards/chart.html", context, status=status)


def _range_override(params) -> str:
    """Return the quick range a dashboard's charts are all shown over (`range`), or "" for their own."""
    range_override = params.get("range", "")
    return range_override if range_override in DASHBOARD_RANGES else ""


def _dashboard_url(request: HttpRequest, slug: str) -> str:
    """Return the dashboard's address, over the range it was shown with (a form's `range`) if any."""
    url = reverse("dashboard-detail", args=[slug])
    range_override = _range_override(request.POST)
    return url + f"?range={range_override}" if range_override else url


def _editable_chart(request: HttpRequest, slug: str, chart_id: int) -> Chart:
    chart = get_object_or_404(Chart.objects.select_related("dashboard"), pk=chart_id, dashboard__slug=slug)
    if not chart.dashboard.editable_by(request.user):
        raise PermissionDenied("only the dashboard's owner (or an admin) may change it")
    return chart


@role_required(PRODUCT)
@require_POST
def chart_move(request: HttpRequest, slug: str, chart_id: int) -> HttpResponse:
    """Move a chart one place up or down."""
    chart = _editable_chart(request, slug, chart_id)
    direction = request.POST.get("direction", "")
    if direction not in ("up", "down"):
        return HttpResponse("direction must be up or down", status=400, content_type="text/plain")
    try:
        services.chart_move(chart=chart, direction=direction)
    except services.Gone as gone:
        return _gone(request, slug, f"{gone} Nothing was moved.")
    return redirect(_dashboard_url(request, slug) + f"#chart-{chart.pk}")


def _gone(request: HttpRequest, slug: str, message: str) -> HttpResponse:
    """Say that someone else removed the chart or deleted the dashboard meanwhile; back to the dashboard,
    or to the list when it is gone."""
    messages.error(request, message)
    if Dashboard.objects.filter(slug=slug).exists():
        return redirect(_dashboard_url(request, slug))
    return redirect("dashboard-list")


@role_required(PRODUCT)
@require_POST
def chart_remove(request: HttpRequest, slug: str, chart_id: int) -> HttpResponse:
    """Remove a chart from its dashboard."""
    chart = _editable_chart(request, slug, chart_id)
    try:
        services.chart_remove(chart=chart)
    except services.Gone as gone:
        return _gone(request, slug, f"{gone} Nothing was removed.")
    messages.success(request, f"Removed “{chart.title}”.")
    return redirect(_dashboard_url(request, slug))


@role_required(PRODUCT)
@require_POST
def dashboard_delete(request: HttpRequest, slug: str) -> HttpResponse:
    """Delete a dashboard and its charts."""
    dashboard = get_object_or_404(Dashboard, slug=slug)
    if not dashboard.editable_by(request.user):
        raise PermissionDenied("only the dashboard's owner (or an admin) may delete it")
    services.dashboard_delete(dashboard=dashboard)
    messages.success(request, f"Deleted the dashboard “{dashboard.name}”.")
    return redirect("dashboard-list")
