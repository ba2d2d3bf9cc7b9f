"""Product's dashboard pages as a browser gets them (Django test client): what the person typed or chose
survives a refusal and a round trip through a form."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.dashboards.models import Chart, Dashboard

pytestmark = pytest.mark.django_db


@pytest.fixture
def searches(aggregate_events):
    now = timezone.now()
    return aggregate_events(
        [
            {"event": "search_made", "user_id": f"u{i}", "timestamp": (now - timedelta(hours=i)).isoformat()}
            for i in range(5)
        ]
    )


def input_value(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', html).group(0)
    value = re.search(r'\bvalue="([^"]*)"', tag)
    return unescape(value.group(1)) if value else ""


def selected(html: str, select_name: str) -> list[str]:
    select = re.search(rf'<select name="{select_name}"[^>]*>(.*?)</select>', html, flags=re.S).group(1)
    return re.findall(r'<option value="([^"]*)"[^>]*\bselected\b', select)


def test_a_refused_save_keeps_the_title_the_person_typed(product_client, searches):
    explorer = product_client.get("/dashboards/", {"event": "search_made", "range": "7d"})
    query_string = input_value(explorer.content.decode(), "query_string")

    # They rename the chart and press Save, forgetting to name the new dashboard.
    refused = product_client.post(
        "/dashboards/charts/",
        {"title": "Weekly searches for the board", "query_string": query_string, "dashboard": "new"},
        follow=True,
    )
    html = refused.content.decode()

    assert "Name the new dashboard." in html
    assert input_value(html, "title") == "Weekly searches for the board"


@pytest.fixture
def board(make_person, searches):
    owner = make_person("product", "olga")
    board = Dashboard.objects.create(name="Usage", slug="usage", owner=owner)
    for position, title in enumerate(["A", "B"]):
        Chart.objects.create(
            dashboard=board,
            title=title,
            position=position,
            query_string=urlencode({"event": "search_made", "range": "7d", "interval": "day"}),
        )
    return board


@pytest.mark.parametrize("action", ["move", "remove"])
def test_arranging_a_dashboard_shown_over_another_range_stays_on_that_range(client, board, action):
    client.force_login(board.owner)
    page = client.get("/dashboards/d/usage/", {"range": "24h"}).content.decode()
    assert selected(page, "range") == ["24h"]

    # Submit the second chart's form as the browser would: its action and its fields.
    pattern = rf'<form method="post" action="([^"]*/{action}/)">(.*?)</form>'
    forms = re.findall(pattern, page, flags=re.S)
    action_url, fields = forms[2] if action == "move" else forms[1]  # chart B: "up", or "remove"
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', fields))
    after = client.post(unescape(action_url), data, follow=True)

    assert after.status_code == 200
    assert selected(after.content.decode(), "range") == ["24h"]
