"""Funnels and retention tables never build a link the server cannot take: their URL state goes into every
link the page builds (CSV, copy link, save, open in explorer, a step's users), and gunicorn refuses a request
line over 4,094 bytes, so settings whose state would pass MAX_QUERY_STRING are refused as the Trends ones are
(tests/dashboards/test_explorer_link_length.py). A chart saved before the limit still draws."""

import html
import json
import re
from datetime import UTC, timedelta
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from django.utils import timezone

from apps.dashboards.analyses import AnalysisForm, query_string
from apps.dashboards.forms import MAX_QUERY_STRING
from apps.dashboards.models import Chart, Dashboard

pytestmark = pytest.mark.django_db

REQUEST_LINE = 4094  # gunicorn's limit_request_line: "GET <link> HTTP/1.1"
GET_AND_VERSION = len("GET  HTTP/1.1")


def long_steps(n: int = 8, length: int = 120, letter: str = "é") -> list[str]:
    """Event names whose percent-encoding is long: "é" is six characters of URL."""
    return [f"step{i}_" + letter * (length - 6) for i in range(n)]


def bound(**params) -> AnalysisForm:
    data = QueryDict(mutable=True)
    for key, value in params.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return AnalysisForm(data)


def funnel(steps: list[str], **params) -> AnalysisForm:
    return bound(analysis="funnel", steps=",".join(steps), **params)


def links_in(page: str) -> list[str]:
    """Every address the page offers: hrefs, copy links, form actions, the save form's state and the funnel
    figure's step links."""
    found = re.findall(r'(?:href|data-copy-url|action)="([^"]*)"', page)
    found += re.findall(r'name="query_string"[^>]*value="([^"]*)"', page)

    def strings(value) -> list[str]:
        if isinstance(value, str):
            return [value] if value.startswith("/") else []
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return []

    for block in re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S):
        for trace in json.loads(block).get("data", []):
            found += strings(trace.get("customdata") or [])
    return found


# --- the form ---------------------------------------------------------------------------------------------


def test_many_long_steps_are_refused_on_the_steps_field():
    form = funnel(long_steps())

    assert not form.is_valid()
    assert list(form.errors) == ["steps"]
    [error] = form.errors["steps"]
    assert "These 8 steps make the chart’s address" in error
    assert f"at most {MAX_QUERY_STRING:,}" in error
    assert "pick fewer steps, or events with shorter names" in error


def test_long_filters_are_refused_on_the_filter_field():
    filters = [f"p{i}={'v' * 400}" for i in range(9)]

    form = funnel(["search_made", "download_started"], filter=filters)

    assert not form.is_valid()
    assert list(form.errors) == ["filter"]
    assert "use fewer or shorter filters" in " ".join(form.errors["filter"])


def test_a_long_breakdown_is_refused_on_the_breakdown_field():
    filters = [f"p{i}={'v' * 400}" for i in range(3)]

    form = funnel(["a", "b"], breakdown="prop:" + "日" * 200, filter=filters)  # 1,800 characters of URL

    assert not form.is_valid()
    assert list(form.errors) == ["breakdown"]
    assert "break down by a property with a shorter name" in " ".join(form.errors["breakdown"])


def test_a_retention_table_is_refused_on_the_event_that_makes_it_long():
    filters = [f"p{i}={'v' * 300}" for i in range(4)]

    form = bound(analysis="retention", start_event="search_made", return_event="日" * 200, filter=filters)

    assert not form.is_valid()
    assert list(form.errors) == ["return_event"]
    [error] = form.errors["return_event"]
    assert "the chart’s address" in error and f"at most {MAX_QUERY_STRING:,}" in error
    assert "pick an event with a shorter name" in error


def longest_accepted(make) -> int:
    """Return the largest n for which make(n) is valid (make(1) is, make(200) is not)."""
    low, high = 1, 200
    assert make(low).is_valid() and not make(high).is_valid()
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if make(middle).is_valid() else (low, middle)
    return low


def test_settings_up_to_the_limit_are_accepted_and_one_character_more_is_not():
    make = lambda n: funnel(long_steps(n=4) + ["x" * n])  # noqa: E731

    accepted = longest_accepted(make)

    form = make(accepted)
    assert form.is_valid()
    assert len(query_string(form.settings())) == MAX_QUERY_STRING
    assert list(make(accepted + 1).errors) == ["steps"]


# --- the page ---------------------------------------------------------------------------------------------


def test_the_explorer_page_says_what_to_change_and_builds_no_link_too_long_to_open(product_client):
    params = {"analysis": "funnel", "steps": ",".join(long_steps()), "window": "86400"}

    response = product_client.get("/dashboards/?" + urlencode(params))

    # An invalid analysis is answered 400 with the form and its errors, as the Trends page does.
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "These 8 steps make the chart’s address" in page
    assert "pick fewer steps, or events with shorter names" in page
    assert "format=csv" not in page and 'name="query_string"' not in page  # no CSV, copy or save links
    assert max(len(link) for link in links_in(page)) + GET_AND_VERSION < REQUEST_LINE


def test_the_csv_of_settings_too_long_is_refused_with_the_reason(product_client):
    params = {"analysis": "funnel", "steps": ",".join(long_steps()), "format": "csv"}

    response = product_client.get("/dashboards/?" + urlencode(params))

    assert response.status_code == 400
    assert "pick fewer steps" in response.content.decode()


def test_every_link_of_a_funnel_at_the_limit_fits_a_request_line(product_client, aggregate_events):
    filters = [f"note={'n' * 400}"]

    def make(n: int) -> AnalysisForm:
        steps = long_steps(n=3) + ["last_" + "é" * n]
        return funnel(steps, breakdown="prop:plan", range="7d", filter=filters)

    form = make(longest_accepted(make))
    assert form.is_valid()
    settings = form.settings()
    assert MAX_QUERY_STRING - 6 < len(query_string(settings)) <= MAX_QUERY_STRING
    start = timezone.now().astimezone(UTC) - timedelta(hours=10)
    aggregate_events(
        [
            {
                "service": "web",
                "event": step,
                "user_id": user,
                "timestamp": (start + timedelta(minutes=number)).isoformat(),
                "properties": {"note": "n" * 400, "plan": plan},
            }
            for user, plan, steps in (("u1", "pro", settings.steps), ("u2", "free", settings.steps[:3]))
            for number, step in enumerate(steps)
        ]
    )

    response = product_client.get("/dashboards/?" + query_string(settings))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    links = links_in(page)
    step_links = [link for link in links if link.startswith("/dashboards/users/?")]
    assert any("outcome=dropped" in link and "group=free" in link for link in step_links)
    assert any("format=csv" in link for link in links)
    too_long = [link for link in links if len(link) + GET_AND_VERSION > REQUEST_LINE]
    assert too_long == []
    state = re.search(r'name="query_string"[^>]*value="([^"]*)"', page).group(1)
    assert len(state) <= MAX_QUERY_STRING  # what "save chart" stores and "open in explorer" links to


def test_a_refused_save_never_redirects_to_a_link_too_long_to_open(product_client):
    state = urlencode({"analysis": "funnel", "steps": ",".join(long_steps()), "window": "86400"})

    response = product_client.post(
        "/dashboards/charts/", {"title": "t", "query_string": state, "dashboard": "new", "new_name": "n"}
    )

    assert response.status_code == 302
    assert not Dashboard.objects.filter(name="n").exists()
    assert len(response["Location"]) <= MAX_QUERY_STRING


# --- a chart saved before the limit -----------------------------------------------------------------------


@pytest.mark.parametrize("analysis", ["funnel", "retention"])
def test_an_analysis_saved_before_the_limit_still_draws(client, make_person, aggregate_events, analysis):
    steps = long_steps(n=5)
    start = timezone.now().astimezone(UTC) - timedelta(hours=10)
    aggregate_events(
        [
            {
                "service": "web",
                "event": step,
                "user_id": "u1",
                "timestamp": (start + timedelta(minutes=number)).isoformat(),
            }
            for number, step in enumerate(steps)
        ]
    )
    if analysis == "funnel":
        params = {"analysis": "funnel", "steps": ",".join(steps), "window": "86400", "range": "7d"}
    else:
        long_filters = [("filter", f"p{i}={'v' * 400}") for i in range(5)]
        params = {"analysis": "retention", "start_event": steps[0], "return_event": steps[1]}
        params = list(params.items()) + [("range", "7d")] + long_filters
    state = urlencode(params)
    assert MAX_QUERY_STRING < len(state) < 4000
    owner = make_person("product", "olga")
    board = Dashboard.objects.create(name="Usage", slug="usage", owner=owner)
    chart = Chart.objects.create(dashboard=board, title="Long", position=0, query_string=state)
    client.force_login(owner)

    response = client.get(f"/dashboards/d/usage/charts/{chart.pk}/?part=figure")

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "invalid" not in page.lower() and "address" not in page
    assert re.search(r'<script type="application/json">', page)
    card = html.unescape(client.get("/dashboards/d/usage/").content.decode())
    assert "pick fewer" not in card and "use fewer" not in card


def test_a_funnel_group_whose_value_is_too_long_for_an_address_is_not_linked_and_says_so(
    product_client, aggregate_events
):
    # The group's value comes from the data: short settings can still make a step's users link too long.
    long_plan = "p" * 4500
    start = timezone.now().astimezone(UTC) - timedelta(hours=10)
    aggregate_events(
        [
            {
                "service": "web",
                "event": step,
                "user_id": user,
                "timestamp": (start + timedelta(minutes=number)).isoformat(),
                "properties": {"plan": plan},
            }
            for user, plan in (("u1", long_plan), ("u2", "free"))
            for number, step in enumerate(["signup", "upload"])
        ]
    )

    settings = {"analysis": "funnel", "steps": "signup,upload", "breakdown": "prop:plan"}
    response = product_client.get("/dashboards/?" + urlencode(settings))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    step_links = [link for link in links_in(page) if link.startswith("/dashboards/users/?")]
    assert any("group=free" in link for link in step_links)  # the short group keeps its links
    assert [link for link in step_links if len(link) + GET_AND_VERSION > REQUEST_LINE] == []
    assert "not linked to their users: their group's value is too long" in page
