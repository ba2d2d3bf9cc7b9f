"""The overview's "last 30 days" and the explorer it links to count the same window: the link carries the
range the overview counted (from midnight UTC 30 days back to the moment the page was drawn), not
`range=30d`, which the explorer reads at the moment of the click: a midnight in between moved its start a
day later, and its total no longer matched the page's."""

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone


@pytest.fixture
def product_client(client, make_person):
    client.force_login(make_person("product"))
    return client


def _at(moment: datetime):
    return lambda: moment


def test_the_overview_charts_explorer_link_counts_what_the_overview_counted(
    product_client, aggregate_events, monkeypatch
):
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    drawn_at = today + timedelta(hours=23, minutes=59, seconds=30)
    clicked_at = drawn_at + timedelta(minutes=1)  # past midnight
    aggregate_events(
        [
            # The first minutes of the overview's first day, 30 days back.
            {
                "service": "gateway",
                "event": "signup",
                "timestamp": (today - timedelta(days=30, minutes=-30)).isoformat(),
            },
            {"service": "gateway", "event": "signup", "timestamp": (today - timedelta(days=2)).isoformat()},
        ]
    )

    monkeypatch.setattr(timezone, "now", _at(drawn_at))
    page = product_client.get("/").content.decode()
    counted = int(re.search(r">signup</a></td><td class=\"num\">([\d,]+)<", page).group(1))
    link = re.search(r'<a href="(/dashboards/\?[^"]+)">Open in explorer', page).group(1)

    monkeypatch.setattr(timezone, "now", _at(clicked_at))
    response = product_client.get(html.unescape(link) + "&format=csv")

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert counted == 2
    assert sum(int(row["signup"]) for row in rows) == counted


def test_the_overview_leaves_out_days_after_its_own_as_the_explorer_does(
    product_client, aggregate_events, monkeypatch
):
    """An event stamped up to the clock tolerance ahead lands on the next day, which the explorer's range
    ends before: the overview counted it anyway (its days had no end)."""
    now = timezone.now()
    aggregate_events([{"service": "gateway", "event": "signup", "timestamp": now.isoformat()}])
    # The page drawn half a minute before the midnight ahead of the event: to it, the event is tomorrow's.
    drawn_at = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(seconds=30)
    aggregate_events(
        [{"service": "gateway", "event": "signup", "timestamp": (drawn_at - timedelta(hours=1)).isoformat()}]
    )

    monkeypatch.setattr(timezone, "now", _at(drawn_at))
    page = product_client.get("/").content.decode()
    counted = int(re.search(r">signup</a></td><td class=\"num\">([\d,]+)<", page).group(1))
    link = re.search(r'<a href="(/dashboards/\?[^"]+)">Open in explorer', page).group(1)
    response = product_client.get(html.unescape(link) + "&format=csv")

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sum(int(row["signup"]) for row in rows) == counted == 1


def test_the_top_events_row_links_carry_the_same_range_as_the_chart_link(product_client, aggregate_events):
    aggregate_events([{"service": "gateway", "event": "signup", "timestamp": timezone.now().isoformat()}])

    page = product_client.get("/").content.decode()

    chart_link = html.unescape(re.search(r'<a href="(/dashboards/\?[^"]+)">Open in explorer', page).group(1))
    row_link = html.unescape(re.search(r'<a href="(/dashboards/\?[^"]+)">signup</a>', page).group(1))
    ranged = ("start", "end", "interval", "range", "measure")
    chart_range = {k: v for k, v in parse_qs(urlsplit(chart_link).query).items() if k in ranged}
    row_query = parse_qs(urlsplit(row_link).query)
    assert row_query["event"] == ["signup"]
    assert {k: v for k, v in row_query.items() if k in ranged} == chart_range
    assert "start" in chart_range and "end" in chart_range
