"""Who is behind a funnel step: those who reached it and those who dropped off before it, from the API,
from the funnel's table and chart in the explorer, and on the users page (trails for support only)."""

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.utils import timezone

from apps.dashboards.drilldown import funnel_step_links
from apps.metrics.funnel import FunnelQuery, funnel_step_users
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

STEPS = "search_made,scene_viewed,download_ordered"
URL = "/api/v1/metrics/users"


def day0() -> datetime:
    return (
        (timezone.now() - timedelta(days=2))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )


def at(minutes: int) -> str:
    return (day0() + timedelta(minutes=minutes)).isoformat()


def funnel(**params) -> dict:
    return {
        "steps": STEPS,
        "window": "3600",
        "from": day0().isoformat(),
        "to": (day0() + timedelta(days=1)).isoformat(),
        **params,
    }


@pytest.fixture
def paths(store_events):
    """ana: all three steps (two views); bob: two steps; cy: step 1 only; dee: a view without a search;
    eve: the three steps on another service, the second one too late (outside the window)."""
    rows = [
        ("ana", "search_made", 0, "web"),
        ("ana", "scene_viewed", 5, "web"),
        ("ana", "scene_viewed", 6, "web"),
        ("ana", "download_ordered", 10, "web"),
        ("bob", "search_made", 0, "web"),
        ("bob", "scene_viewed", 20, "web"),
        ("cy", "search_made", 0, "web"),
        ("dee", "scene_viewed", 0, "web"),
        ("eve", "search_made", 0, "app"),
        ("eve", "scene_viewed", 90, "app"),
    ]
    store_events(
        [
            {
                "service": service,
                "event": event,
                "user_id": user,
                "correlation_id": f"req-{user}-{n}",
                "timestamp": at(minutes),
            }
            for n, (user, event, minutes, service) in enumerate(rows)
        ]
    )


@pytest.fixture
def product(client, make_person):
    client.force_login(make_person("product"))
    return client


def listed(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.content
    return [(u["user_id"], u["count"]) for u in response.json()["users"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"step": "1"}, [("ana", 1), ("bob", 1), ("cy", 1), ("eve", 1)]),
        ({"step": "2"}, [("ana", 2), ("bob", 1)]),  # counts of the step's event: ana viewed twice
        ({"step": "2", "outcome": "dropped"}, [("cy", 1), ("eve", 1)]),  # their last step reached: search
        ({"step": "3", "outcome": "dropped"}, [("bob", 1)]),
        ({"step": "3"}, [("ana", 1)]),
        ({"step": "2", "breakdown": "service", "group": "app", "outcome": "dropped"}, [("eve", 1)]),
        ({"step": "2", "window": "7200"}, [("ana", 2), ("bob", 1), ("eve", 1)]),
    ],
)
def test_the_api_lists_a_funnel_steps_users(product, paths, params, expected):
    assert listed(product.get(URL, funnel(**params))) == expected


def test_a_steps_users_are_as_many_as_the_funnel_counts(product, paths):
    counts = [s["count"] for s in product.get("/api/v1/metrics/funnel", funnel()).json()["steps"]]

    for step, count in enumerate(counts, start=1):
        assert len(product.get(URL, funnel(step=str(step))).json()["users"]) == count
    for step in (2, 3):
        dropped = product.get(URL, funnel(step=str(step), outcome="dropped")).json()["users"]
        assert len(dropped) == counts[step - 2] - counts[step - 1]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (funnel(), "step"),  # which step?
        (funnel(step="4"), "step"),
        (funnel(step="0"), "step"),
        (funnel(step="1", outcome="dropped"), "outcome"),
        (funnel(step="2", outcome="left"), "outcome"),
        (funnel(step="2", group="web"), "group"),
        (funnel(step="2", event="search_made"), "steps"),  # a funnel step and a series' point at once
        ({"event": "search_made", "step": "2"}, "steps"),  # a step without its funnel
        (funnel(step="2", breakdown="event"), "breakdown"),
    ],
)
def test_bad_funnel_step_input_is_a_400_naming_the_parameter(product, paths, params, name):
    response = product.get(URL, params)

    assert response.status_code == 400, response.content
    assert name in response.json()


def explorer_page(client) -> str:
    params = {
        "analysis": "funnel",
        "steps": STEPS,
        "window": "3600",
        "range": "custom",
        "start": day0().strftime("%Y-%m-%dT%H:%M"),
        "end": (day0() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    response = client.get("/dashboards/", params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_funnel_table_and_chart_lead_to_each_steps_users(product, paths):
    page = explorer_page(product)

    reached = re.findall(r'<a href="([^"]+)">reached it</a>', page)
    dropped = re.findall(r'<a href="([^"]+)">dropped off</a>', page)
    assert len(reached) == 3 and len(dropped) == 2  # nobody drops off before step 1
    figure = json.loads(re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S)[0])
    chart_links = [point[-1] for point in figure["data"][0]["customdata"]]
    assert chart_links == [link.replace("&amp;", "&") for link in reached]

    dropped_at_3 = product.get(dropped[1].replace("&amp;", "&"))
    assert dropped_at_3.status_code == 200
    html = dropped_at_3.content.decode()
    assert "step 3 (download_ordered), dropped off before it" in html
    assert "<code>bob</code>" in html and "<code>ana</code>" not in html
    assert "/traces/" not in html.split("</nav>", 1)[1]  # product: no trails


def test_support_reaches_the_trails_of_a_steps_users(client, make_person, paths):
    client.force_login(make_person("support"))
    html = client.get("/dashboards/users/", funnel(step="3")).content.decode()

    assert 'href="/users/ana/"' in html
    assert 'href="/traces/req-ana-3/"' in html  # her order, in the funnel's range


def test_a_step_link_of_a_range_ending_at_now_lists_whom_the_chart_counted(client, make_person):
    # A quick range ends at now, to the microsecond: a link cut to the second would run another funnel and
    # miss a step made in the range's last fraction of a second.
    now = datetime(2026, 11, 16, 10, 0, 0, 600_000, tzinfo=UTC)
    RawEventFactory(user_id="u1", event="a", timestamp=now - timedelta(minutes=5))
    RawEventFactory(user_id="u1", event="b", timestamp=now - timedelta(milliseconds=200))
    query = FunnelQuery(steps=("a", "b"), window=timedelta(days=1), start=now - timedelta(days=30), end=now)
    assert funnel_step_users(query, step=2) == ["u1"]
    client.force_login(make_person("product"))

    reached, _ = funnel_step_links(query)[1]
    response = client.get(URL, dict(parse_qsl(urlsplit(reached).query)))

    assert response.status_code == 200
    assert [user["user_id"] for user in response.json()["users"]] == ["u1"]


@pytest.fixture
def plans(store_events):
    """Step 1 without a plan (ana, bob: bob's as JSON null), with the text "(none)" (cy), with "pro" (dee);
    ana, cy and dee view a scene after."""
    rows = [
        ("ana", "search_made", 0, {}),
        ("ana", "scene_viewed", 5, {}),
        ("bob", "search_made", 0, {"plan": None}),
        ("cy", "search_made", 0, {"plan": "(none)"}),
        ("cy", "scene_viewed", 5, {"plan": "(none)"}),
        ("dee", "search_made", 0, {"plan": "pro"}),
        ("dee", "scene_viewed", 5, {}),
    ]
    store_events(
        [
            {"event": event, "user_id": user, "timestamp": at(minutes), "properties": props}
            for user, event, minutes, props in rows
        ]
    )


def test_a_funnels_absent_group_and_the_text_none_lead_to_their_own_users(product, plans):
    body = product.get("/api/v1/metrics/funnel", funnel(breakdown="prop:plan")).json()
    assert [(g["name"], g["absent"], [s["count"] for s in g["steps"]]) for g in body["groups"]] == [
        ("(none)", True, [2, 1, 0]),
        ("(none)", False, [1, 1, 0]),
        ("pro", False, [1, 1, 0]),
    ]
    assert listed(product.get(URL, funnel(step="1", breakdown="prop:plan", absent="true"))) == [
        ("ana", 1),
        ("bob", 1),
    ]
    assert listed(product.get(URL, funnel(step="1", breakdown="prop:plan", group="(none)"))) == [("cy", 1)]
    assert listed(
        product.get(URL, funnel(step="2", outcome="dropped", breakdown="prop:plan", absent="true"))
    ) == [("bob", 1)]

    page = product.get(
        "/dashboards/",
        {
            "analysis": "funnel",
            "steps": STEPS,
            "window": "3600",
            "breakdown": "prop:plan",
            "range": "custom",
            "start": day0().strftime("%Y-%m-%dT%H:%M"),
            "end": (day0() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    ).content.decode()
    # The table: everyone's three steps, then each group's; step 1's "reached it" of each group.
    reached = [link.replace("&amp;", "&") for link in re.findall(r'<a href="([^"]+)">reached it</a>', page)]
    assert len(reached) == 12
    everyone, absent, text, pro = (product.get(reached[k]).content.decode() for k in (0, 3, 6, 9))
    assert "<code>bob</code>" in everyone and "<code>cy</code>" in everyone and "<code>dee</code>" in everyone
    assert "<code>ana</code>" in absent and "<code>bob</code>" in absent
    assert "<code>cy</code>" not in absent and "<code>dee</code>" not in absent
    assert "<code>cy</code>" in text and "<code>ana</code>" not in text and "<code>bob</code>" not in text
    assert "<code>dee</code>" in pro and "<code>cy</code>" not in pro
    assert "plan not set (none)" in absent and "plan = (none)" in text
    # The chart: one trace per group, each bar leading to its own group's users.
    figure = json.loads(re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S)[0])
    assert [t["name"] for t in figure["data"]] == ["(none)", "(none)", "pro"]
    chart_links = [[point[-1] for point in trace["customdata"]] for trace in figure["data"]]
    assert chart_links == [reached[3:6], reached[6:9], reached[9:12]]


def test_a_users_more_link_keeps_the_points_range_to_the_microsecond(client, make_person, paths):
    # ana has four requests in the range (more than the page lists): her own page must read the same range,
    # not one cut to the minute, which would drop the last seconds of a range ending at now.
    end = day0() + timedelta(hours=5, seconds=42, microseconds=500)
    client.force_login(make_person("support"))

    html = client.get("/dashboards/users/", funnel(step="1", to=end.isoformat())).content.decode()

    more = re.search(r'href="/users/ana/\?([^"]+)">more', html)
    assert more, html
    assert dict(parse_qsl(more.group(1).replace("&amp;", "&"))) == {
        "range": "custom",
        "start": day0().strftime("%Y-%m-%dT%H:%M"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%S.%f"),
    }
    own_page = client.get(f"/users/ana/?{more.group(1).replace('&amp;', '&')}")
    assert own_page.status_code == 200
    assert own_page.content.decode().count('href="/traces/req-ana-') == 4
