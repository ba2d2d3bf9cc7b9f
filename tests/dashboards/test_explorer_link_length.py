"""The explorer never builds a link the server cannot take: gunicorn refuses a request line over 4,094 bytes,
so settings whose URL state would pass MAX_QUERY_STRING are refused with a word on what to change."""

import html
import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from django.utils import timezone

from apps.dashboards.chartspec import query_string
from apps.dashboards.forms import MAX_EVENTS, MAX_QUERY_STRING, ExplorerForm

pytestmark = pytest.mark.django_db

REQUEST_LINE = 4094  # gunicorn's limit_request_line: "GET <link> HTTP/1.1"


def long_names(n: int, length: int = 120) -> list[str]:
    return [f"e{i:03d}_" + "x" * (length - 5) for i in range(n)]


def bound(events: list[str], **params) -> ExplorerForm:
    data = QueryDict(mutable=True)
    data.setlist("event", events)
    for key, value in params.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return ExplorerForm(data)


def test_many_long_event_names_are_refused_with_a_word_on_what_to_do():
    events = long_names(40)  # far below MAX_EVENTS, but about 5,000 characters of URL
    assert len(events) < MAX_EVENTS

    form = bound(events)

    assert not form.is_valid()
    [error] = form.errors["event"]
    assert "These 40 events make the chart’s address" in error
    assert f"at most {MAX_QUERY_STRING:,}" in error
    assert "pick fewer events" in error


def test_settings_up_to_the_limit_are_accepted():
    events = long_names(40)
    accepted = max(n for n in range(1, len(events) + 1) if bound(events[:n]).is_valid())
    form = bound(events[:accepted])

    assert form.is_valid()
    assert MAX_QUERY_STRING - 130 < len(query_string(form.settings())) <= MAX_QUERY_STRING
    assert not bound(events[: accepted + 1]).is_valid()


def test_long_filters_are_refused_on_the_filter_field():
    filters = [f"p{i}={'v' * 400}" for i in range(9)]

    form = bound(["search_made"], filter=filters)

    assert not form.is_valid()
    assert "event" not in form.errors
    assert "use fewer or shorter filters" in " ".join(form.errors["filter"])


def test_the_explorer_page_refuses_instead_of_building_links_too_long_to_open(product_client):
    events = long_names(40)

    response = product_client.get("/dashboards/?" + urlencode([("event", e) for e in events]))

    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "pick fewer events, or events with shorter names" in page
    assert "format=csv" not in page and 'name="query_string"' not in page  # no CSV, copy or save links
    assert max(len(link) for link in links_in(page)) < REQUEST_LINE - len("GET  HTTP/1.1")


def links_in(page: str) -> list[str]:
    """Every address the page offers: hrefs, copy links, form actions, and the figures' point links."""
    found = re.findall(r'(?:href|data-copy-url|action)="([^"]*)"', page)
    found += re.findall(r'name="query_string"[^>]*value="([^"]*)"', page)
    for block in re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S):
        for trace in json.loads(block).get("data", []):
            found += [link for link in trace.get("customdata") or [] if isinstance(link, str)]
    return found


def test_every_link_of_a_chart_at_the_limit_fits_a_request_line(product_client, aggregate_events):
    events = long_names(40)
    while not bound(events, breakdown="event", top="3", range="7d").is_valid():
        events = events[:-1]
    when = (timezone.now() - timedelta(hours=3)).isoformat()
    aggregate_events([{"service": "web", "event": e, "timestamp": when} for e in events])
    params = [("event", e) for e in events] + [("breakdown", "event"), ("top", "3"), ("range", "7d")]

    response = product_client.get("/dashboards/?" + urlencode(params))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    links = links_in(page)
    assert any(link.startswith("/dashboards/users/?") for link in links)  # the point links are there
    assert any("format=csv" in link for link in links)
    too_long = [link for link in links if len(link) + len("GET  HTTP/1.1") > REQUEST_LINE]
    assert too_long == []
    state = re.search(r'name="query_string"[^>]*value="([^"]*)"', page).group(1)
    assert len(state) <= MAX_QUERY_STRING  # what "save chart" stores and "open in explorer" links to


def test_a_refused_save_never_redirects_to_a_link_too_long_to_open(product_client):
    state = urlencode([("event", e) for e in long_names(40)] + [("measure", "median")])

    response = product_client.post(
        "/dashboards/charts/", {"title": "t", "query_string": state, "dashboard": "new", "new_name": "n"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/dashboards/")  # back to the explorer, told why
    assert len(response["Location"]) <= MAX_QUERY_STRING
