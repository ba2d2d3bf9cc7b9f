"""Two people on one saved dashboard at once: whoever loses the race sees a clear answer, never a 500, and
no chart outlives its dashboard."""

import pytest
from django.db import transaction

from apps.dashboards import services
from apps.dashboards.models import Chart, Dashboard

from .conftest import run_in_thread, wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "event=search_made&measure=count&interval=day&range=7d"


@pytest.fixture
def board(make_person):
    owner = make_person("product", "owner")
    dashboard = services.dashboard_create(name="Search usage", owner=owner)
    charts = [services.chart_add(dashboard=dashboard, title=t, query_string=QUERY) for t in "abc"]
    return owner, dashboard, charts


def test_a_chart_saved_from_the_explorer_to_a_dashboard_deleted_meanwhile(board, person_client):
    owner, dashboard, _ = board
    client = person_client(owner)
    form = {"title": "d", "query_string": QUERY, "dashboard": str(dashboard.pk), "new_name": ""}
    with transaction.atomic():
        services.dashboard_delete(dashboard=dashboard)  # the other tab's delete, not yet committed
        thread, outcome = run_in_thread(lambda: client.post("/dashboards/charts/", form))
        wait_until_blocked()
    thread.join(5)

    assert outcome.error is None
    # Back to the explorer, which says so and keeps what was typed, not a server error.
    assert outcome.value.status_code == 302 and outcome.value["Location"].startswith("/dashboards/?")
    assert client.session["dashboards.save_draft"]["title"] == "d"
    assert not Dashboard.objects.exists() and not Chart.objects.exists()


def test_a_dashboard_deleted_while_a_chart_is_added_is_deleted_with_it(board, person_client):
    owner, dashboard, _ = board
    client = person_client(owner)
    with transaction.atomic():
        services.chart_add(dashboard=dashboard, title="late", query_string=QUERY)  # the explorer's save
        thread, outcome = run_in_thread(lambda: client.post(f"/dashboards/d/{dashboard.slug}/delete/"))
        wait_until_blocked()
    thread.join(5)

    assert outcome.error is None
    assert outcome.value.status_code == 302
    assert not Dashboard.objects.exists() and not Chart.objects.exists()


def test_moving_a_chart_that_another_person_removed_meanwhile(board, person_client):
    owner, dashboard, (a, b, c) = board
    client = person_client(owner)
    url = f"/dashboards/d/{dashboard.slug}/charts/{b.pk}/move/"
    with transaction.atomic():
        services.chart_remove(chart=b)  # another person's remove, not yet committed
        thread, outcome = run_in_thread(lambda: client.post(url, {"direction": "up"}))
        wait_until_blocked()
    thread.join(5)

    assert outcome.error is None
    assert outcome.value.status_code == 302
    assert outcome.value["Location"] == f"/dashboards/d/{dashboard.slug}/"
    assert list(Chart.objects.order_by("position").values_list("title", "position")) == [("a", 0), ("c", 2)]


def test_removing_a_chart_of_a_dashboard_deleted_meanwhile(board, person_client):
    owner, dashboard, (a, _, _) = board
    client = person_client(owner)
    url = f"/dashboards/d/{dashboard.slug}/charts/{a.pk}/remove/"
    with transaction.atomic():
        services.dashboard_delete(dashboard=dashboard)
        thread, outcome = run_in_thread(lambda: client.post(url))
        wait_until_blocked()
    thread.join(5)

    assert outcome.error is None
    assert outcome.value.status_code == 302 and outcome.value["Location"] == "/dashboards/d/"  # the list
    assert not Dashboard.objects.exists() and not Chart.objects.exists()


def test_two_charts_saved_at_once_get_distinct_positions(board, person_client):
    owner, dashboard, _ = board
    with transaction.atomic():
        services.chart_move(chart=board[2][0], direction="down")  # holds the dashboard
        threads = [
            run_in_thread(
                lambda who=who: person_client(who).post(
                    "/dashboards/charts/",
                    {"title": who.username, "query_string": QUERY, "dashboard": str(dashboard.pk)},
                )
            )
            for who in (owner, owner)  # two tabs
        ]
        wait_until_blocked(2)
    for thread, _ in threads:
        thread.join(5)

    assert [outcome.value.status_code for _, outcome in threads] == [302, 302]
    positions = list(Chart.objects.values_list("position", flat=True))
    assert sorted(positions) == [0, 1, 2, 3, 4]
