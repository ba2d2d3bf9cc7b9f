"""A custom range's ends are kept as given in the page's links (Download CSV, Copy link) and in a saved chart:
those must answer what the page shows. A funnel reads [start, end) to the microsecond, unaligned."""

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def day0() -> datetime:
    return (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )


@pytest.fixture
def two_users(aggregate_events):
    """u1 starts the funnel 10 s after 10:00, before the range's start (10:00:30); u2 at 10:01."""
    ten = day0() + timedelta(hours=10)
    return aggregate_events(
        [
            {"event": "search_made", "user_id": "u1", "timestamp": (ten + timedelta(seconds=10)).isoformat()},
            {
                "event": "download_started",
                "user_id": "u1",
                "timestamp": (ten + timedelta(minutes=5)).isoformat(),
            },
            {"event": "search_made", "user_id": "u2", "timestamp": (ten + timedelta(minutes=1)).isoformat()},
        ]
    )


def test_the_csv_link_of_a_funnel_answers_the_range_the_page_shows(two_users, product_client):
    start = (day0() + timedelta(hours=10, seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (day0() + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%S")
    params = {
        "analysis": "funnel",
        "steps": "search_made,download_started",
        "range": "custom",
        "start": start,
        "end": end,
    }
    page = product_client.get("/dashboards/", params)
    assert page.status_code == 200
    # What the page says: u2 only (u1's search came before the range's start).
    assert (
        product_client.get(
            "/api/v1/metrics/funnel", {"steps": params["steps"], "from": start + "Z", "to": end + "Z"}
        ).json()["steps"][0]["count"]
        == 1
    )

    link = html.unescape(re.search(r'href="([^"]*format=csv)"', page.content.decode()).group(1))
    rows = list(csv.DictReader(io.StringIO(product_client.get(link).content.decode())))
    step_1 = [row["users"] for row in rows if row["step"] == "1" and row["group_kind"] == "all"]

    assert step_1 == ["1"], (link, rows)


def test_the_csv_link_of_a_minute_chart_keeps_the_ranges_last_minute(two_users, product_client):
    ten = day0() + timedelta(hours=10)
    params = {
        "event": "search_made",
        "interval": "minute",
        "range": "custom",
        "start": ten.strftime("%Y-%m-%dT%H:%M"),
        "end": (ten + timedelta(minutes=1, seconds=30)).strftime("%Y-%m-%dT%H:%M:%S"),  # 10:01:30
    }
    page = product_client.get("/dashboards/", params)
    assert page.status_code == 200

    link = html.unescape(re.search(r'href="([^"]*format=csv)"', page.content.decode()).group(1))
    rows = list(csv.reader(io.StringIO(product_client.get(link).content.decode())))

    # The chart's buckets: 10:00 (u1) and 10:01 (u2), the last one partly in the range.
    assert [(row[0][11:16], row[1]) for row in rows[1:]] == [("10:00", "1"), ("10:01", "1")]
