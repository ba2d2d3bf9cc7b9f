"""The users page (/dashboards/users/): who is behind a chart's point; support also gets user pages and
trails. And the charts' points carry its address, for the clicks (kinds, not names, decide which)."""

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape as html_unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import AuditEntry
from apps.dashboards.users_page import PER_PAGE, point_description
from apps.metrics.people import PointQuery

pytestmark = pytest.mark.django_db

H14 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
POINT = {
    "event": "search_made",
    "from": "2026-11-03T14:00:00Z",
    "to": "2026-11-03T15:00:00Z",
    "breakdown": "service",
    "value": "tiles",
}


def at(minutes: int) -> str:
    return (H14 + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def traffic(aggregate_events):
    events = [
        {
            "event": "search_made",
            "service": "tiles",
            "user_id": "ana",
            "correlation_id": "req-a1",
            "timestamp": at(5),
        },
        {
            "event": "search_made",
            "service": "tiles",
            "user_id": "ana",
            "correlation_id": "req-a2",
            "timestamp": at(25),
        },
        {
            "event": "search_made",
            "service": "tiles",
            "user_id": "bob",
            "correlation_id": "req-b1",
            "timestamp": at(10),
        },
        {"event": "search_made", "service": "tiles", "timestamp": at(11)},  # no user
        {
            "event": "search_made",
            "service": "gateway",
            "user_id": "cyd",
            "correlation_id": "req-c1",
            "timestamp": at(12),
        },
        # ana's request outside the point's hour: not listed under it.
        {
            "event": "search_made",
            "service": "tiles",
            "user_id": "ana",
            "correlation_id": "req-a0",
            "timestamp": at(-30),
        },
    ]
    return aggregate_events(events)


def signed_in(client, make_person, *roles: str):
    person = make_person(roles[0])
    for role in roles[1:]:
        person.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(person)
    return client


def user_rows(html: str) -> list[tuple[str, str]]:
    """Return (user ID, events) of each row, in order."""
    rows = re.findall(r'<td class="user-id">(.*?)</td>\s*<td class="num">(\d+)</td>', html, re.S)
    return [(re.sub(r"<[^>]+>", "", cell), count) for cell, count in rows]


def test_anonymous_people_go_to_the_login_page(client):
    response = client.get("/dashboards/users/", POINT)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_people_with_neither_product_nor_support_may_not_open_it(client, django_user_model, traffic):
    client.force_login(django_user_model.objects.create_user("no-role", password="correct-horse-battery"))

    assert client.get("/dashboards/users/", POINT).status_code == 403


def test_product_sees_the_users_most_active_first_without_trails(client, make_person, traffic):
    response = signed_in(client, make_person, "product").get("/dashboards/users/", POINT)

    assert response.status_code == 200
    html = response.content.decode()
    assert user_rows(html) == [("ana", "2"), ("bob", "1")]
    assert "search_made, service = tiles, 2026-11-03 14:00–15:00 UTC" in html
    assert "1 event of this point carries no user ID" in html
    assert "2 users, most active first." in html
    # No trail or user page is reachable from here, not even as text.
    assert not re.search(r'href="/traces/[^"]', html)  # the nav's search page only
    assert "/users/" not in html
    assert "req-a1" not in html
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("roles", [("support",), ("support", "product"), ("admin",)])
def test_support_and_admin_reach_each_users_page_and_their_requests(client, make_person, traffic, roles):
    response = signed_in(client, make_person, *roles).get("/dashboards/users/", POINT)

    assert response.status_code == 200
    html = response.content.decode()
    assert user_rows(html) == [("ana", "2"), ("bob", "1")]
    assert 'href="/users/ana/"' in html and 'href="/users/bob/"' in html
    assert 'href="/traces/req-a2/"' in html and 'href="/traces/req-a1/"' in html
    assert 'href="/traces/req-b1/"' in html
    assert "req-a0" not in html  # outside the point's range
    assert "req-c1" not in html  # another service's user
    # Listing requests is a search of them, accountable like the search page; not a trail view.
    entries = list(AuditEntry.objects.values_list("action", "via"))
    assert entries == [(AuditEntry.REQUESTS_SEARCHED, "page")]


def test_a_user_id_is_text_and_stays_in_its_link(client, make_person, aggregate_events):
    hostile = "<b>x</b>/../admin"
    aggregate_events([{"event": "search_made", "service": "tiles", "user_id": hostile, "timestamp": at(5)}])

    html = signed_in(client, make_person, "admin").get("/dashboards/users/", POINT).content.decode()

    assert "<b>x</b>" not in html
    # An ID with a "/" goes in the query string, encoded once (apps/traces/converters.py).
    assert 'href="/users/-/?user_id=%3Cb%3Ex%3C%2Fb%3E%2F..%2Fadmin"' in html


def test_the_page_pages_through_many_users(client, make_person, aggregate_events):
    aggregate_events(
        [
            {"event": "search_made", "service": "tiles", "user_id": f"user-{i:03d}", "timestamp": at(i % 60)}
            for i in range(PER_PAGE + 3)
        ]
    )
    page = signed_in(client, make_person, "product")

    first = page.get("/dashboards/users/", POINT).content.decode()
    assert len(user_rows(first)) == PER_PAGE
    next_link = re.search(r'<a href="\?([^"]*)">less active', first).group(1).replace("&amp;", "&")
    assert dict(parse_qsl(next_link))["offset"] == str(PER_PAGE)

    second = page.get("/dashboards/users/?" + next_link).content.decode()
    assert [u for u, _ in user_rows(second)] == [f"user-{i:03d}" for i in range(PER_PAGE, PER_PAGE + 3)]
    assert "less active" not in second and "more active" in second


def test_support_pages_ask_the_trace_backend_once_for_all_listed_users(
    client, make_person, aggregate_events, monkeypatch
):
    aggregate_events(
        [
            {
                "event": "search_made",
                "service": "tiles",
                "user_id": f"u{i}",
                "correlation_id": f"r{i}",
                "timestamp": at(i),
            }
            for i in range(PER_PAGE + 5)
        ]
    )
    from apps.traces import selectors

    asked = []
    real = selectors.requests_of_users
    monkeypatch.setattr(
        selectors, "requests_of_users", lambda **kw: asked.append(kw["user_ids"]) or real(**kw)
    )

    response = signed_in(client, make_person, "admin").get("/dashboards/users/", POINT)

    assert response.status_code == 200
    assert [len(users) for users in asked] == [PER_PAGE]
    assert "r0" in response.content.decode()  # the requests still show, under their users


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({**POINT, "event": " "}, "event"),
        ({**POINT, "from": "soon"}, "from"),
        ({**POINT, "breakdown": ""}, "value"),
        ({**POINT, "offset": "x"}, "offset"),
    ],
)
def test_a_bad_address_is_a_400_that_names_the_parameter(client, make_person, params, named):
    response = signed_in(client, make_person, "product").get("/dashboards/users/", params)

    assert response.status_code == 400
    assert f"<li>{named}: " in response.content.decode()


# --- the charts' points carry the users page's address -----------------------------------------------------


def figure_of(html: str) -> dict:
    block = re.search(r'<script type="application/json">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


# The explorer's chart of search_made by service, hour by hour over four hours of `traffic`.
BY_SERVICE_HOURLY = {
    "event": "search_made",
    "range": "custom",
    "start": "2026-11-03T12:00",
    "end": "2026-11-03T16:00",
    "interval": "hour",
    "breakdown": "service",
}


def test_each_point_of_an_explorer_chart_links_to_its_users(client, make_person, traffic):
    page = signed_in(client, make_person, "product")
    response = page.get(
        "/dashboards/",
        BY_SERVICE_HOURLY,
    )

    assert response.status_code == 200, re.findall(
        r'class="(?:field-)?error[^"]*">([^<]*)', response.content.decode()
    )
    traces = figure_of(response.content.decode())["data"]
    assert [t["name"] for t in traces] == ["tiles", "gateway"]
    tiles_14h = dict(parse_qsl(urlsplit(traces[0]["customdata"][2]).query))
    assert tiles_14h == POINT
    # The link lists the point's users.
    listed = page.get(traces[1]["customdata"][2]).content.decode()
    assert user_rows(listed) == [("cyd", "1")]


def test_the_numbers_table_links_each_point_that_counts_someone_to_its_users(client, make_person, traffic):
    # A keyboard or screen-reader user reaches a point's users from the table, not only by a click on the
    # chart: the same address, on the cells that count someone.
    page = signed_in(client, make_person, "product")
    html = page.get(
        "/dashboards/",
        BY_SERVICE_HOURLY,
    ).content.decode()

    traces = figure_of(html)["data"]
    table = html.split('class="series-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td class=\"time\">(.*?)</td>(.*?)</tr>", table, re.S)
    for hour, (label, cells) in enumerate(rows):
        for trace, cell in zip(traces, re.findall(r'<td class="num">(.*?)</td>', cells), strict=True):
            link = re.fullmatch(r'<a href="([^"]+)" title="Who is behind it">([^<]+)</a>', cell)
            value = link.group(2) if link else cell
            assert (link is not None) == (value not in ("0", "—")), (label, cell)
            if link:
                assert html_unescape(link.group(1)) == trace["customdata"][hour]
    gateway_14h = re.findall(r'<td class="num"><a href="([^"]+)"', rows[2][1])[-1]
    assert user_rows(page.get(html_unescape(gateway_14h)).content.decode()) == [("cyd", "1")]


@pytest.fixture
def plans(aggregate_events):
    """In the 14:00 hour: ana and bob without a plan (one as JSON null), cyd sends the text "(none)" twice,
    dee the hostile plan "<b>x</b>"."""
    rows = [
        ("ana", {}),
        ("ana", {"plan": None}),
        ("bob", {}),
        ("cyd", {"plan": "(none)"}),
        ("cyd", {"plan": "(none)"}),
        ("dee", {"plan": "<b>x</b>"}),
    ]
    return aggregate_events(
        [
            {"event": "search_made", "user_id": user, "timestamp": at(5 + n), "properties": props}
            for n, (user, props) in enumerate(rows)
        ]
    )


def test_the_absent_group_and_the_text_none_are_two_traces_each_listing_its_own_users(
    client, make_person, plans, aggregate_events
):
    page = signed_in(client, make_person, "product")
    explorer = {
        "event": "search_made",
        "range": "custom",
        "start": "2026-11-03T12:00",
        "end": "2026-11-03T16:00",
        "interval": "hour",
        "breakdown": "prop:plan",
    }
    response = page.get("/dashboards/", explorer)

    assert response.status_code == 200
    traces = figure_of(response.content.decode())["data"]
    # Both are labelled "(none)" for people; the links tell them apart. Names from services stay escaped.
    assert [t["name"] for t in traces] == ["(none)", "(none)", "&lt;b&gt;x&lt;/b&gt;"]
    absent, text, hostile = (page.get(t["customdata"][2]).content.decode() for t in traces)
    assert user_rows(absent) == [("ana", "2"), ("bob", "1")]
    assert user_rows(text) == [("cyd", "2")]
    assert user_rows(hostile) == [("dee", "1")]
    assert "search_made, plan not set (none), 2026-11-03 14:00–15:00 UTC" in absent
    assert "search_made, plan = (none), 2026-11-03 14:00–15:00 UTC" in text

    # With four events each of free and pro, the top 3 end with the absent group; the rest holds the text
    # "(none)" and the hostile plan, and not the absent group's users.
    aggregate_events(
        [
            {"event": "search_made", "user_id": user, "timestamp": at(20 + n), "properties": {"plan": plan}}
            for user, plan in (("eve", "free"), ("fay", "pro"))
            for n in range(4)
        ]
    )
    traces = figure_of(page.get("/dashboards/", {**explorer, "top": "3"}).content.decode())["data"]
    assert [t["name"] for t in traces] == ["free", "pro", "(none)", "other"]
    assert user_rows(page.get(traces[2]["customdata"][2]).content.decode()) == [("ana", "2"), ("bob", "1")]
    assert user_rows(page.get(traces[3]["customdata"][2]).content.decode()) == [("cyd", "2"), ("dee", "1")]


@pytest.mark.parametrize(
    ("extra", "linked"),
    [
        ({"measure": "unique_users"}, [True]),
        ({"measure": "avg:n"}, [False]),
        ({"compare": "on"}, [True, False]),  # the previous period has no link
    ],
)
def test_only_points_that_count_events_or_users_link(client, make_person, traffic, extra, linked):
    page = signed_in(client, make_person, "product")
    response = page.get(
        "/dashboards/",
        {
            "event": "search_made",
            "range": "custom",
            "start": "2026-11-03T12:00",
            "end": "2026-11-03T16:00",
            "interval": "hour",
            **extra,
        },
    )

    traces = figure_of(response.content.decode())["data"]
    assert ["customdata" in t for t in traces] == linked


def test_the_overviews_events_chart_links_its_points(client, make_person, aggregate_events):
    from django.utils import timezone

    aggregate_events([{"event": "search_made", "user_id": "ana", "timestamp": timezone.now().isoformat()}])

    html = signed_in(client, make_person, "product").get("/").content.decode()

    figures = re.findall(r'<script type="application/json">(.*?)</script>', html, re.S)
    per_event, active_users = (json.loads(figure)["data"][0] for figure in figures[:2])
    today = dict(parse_qsl(urlsplit(per_event["customdata"][-1]).query))
    assert today["breakdown"] == "event" and today["value"] == "search_made"
    # Daily active users count every event's users: their link names no event, and lists ana.
    today_active = active_users["customdata"][-1]
    assert "event" not in dict(parse_qsl(urlsplit(today_active).query))
    listed = client.get(today_active).content.decode()
    assert user_rows(listed) == [("ana", "1")]
    assert "every event, " in listed


@pytest.mark.parametrize(
    ("point", "text"),
    [
        (
            PointQuery(
                events=("a", "b"), start=H14, end=H14 + timedelta(hours=1), breakdown="event", value="b"
            ),
            "b, 2026-11-03 14:00–15:00 UTC",
        ),
        (
            PointQuery(
                events=("a",),
                start=H14.replace(hour=0),
                end=H14.replace(hour=0) + timedelta(days=1),
                breakdown="prop:plan",
                rest=True,
                exclude=("pro", "free"),
                filters=(("country", "NL"),),
            ),
            "a, plan not pro, free, country = NL, 2026-11-03 (UTC day)",
        ),
        (
            PointQuery(events=("a",), start=H14, end=H14 + timedelta(days=2)),
            "a, 2026-11-03 14:00 – 2026-11-05 14:00 UTC",
        ),
    ],
)
def test_the_page_says_which_point_it_is(point, text):
    assert point_description(point) == text


def test_the_database_work_of_a_page_does_not_grow_with_its_users(client, make_person, aggregate_events):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    page = signed_in(client, make_person, "product")

    def queries_with(users: int) -> int:
        aggregate_events(
            [
                {
                    "event": "search_made",
                    "service": "tiles",
                    "user_id": f"n{users}-{i}",
                    "timestamp": at(i % 60),
                }
                for i in range(users)
            ]
        )
        with CaptureQueriesContext(connection) as queries:
            assert page.get("/dashboards/users/", POINT).status_code == 200
        return len(queries)

    assert queries_with(2) == queries_with(PER_PAGE + 10)


def test_the_page_says_when_a_point_is_of_events_without_the_property():
    day = {"events": ("a",), "start": H14, "end": H14 + timedelta(hours=1), "breakdown": "prop:plan"}

    assert (
        point_description(PointQuery(**day, absent=True))
        == "a, plan not set (none), 2026-11-03 14:00–15:00 UTC"
    )
    assert (
        point_description(PointQuery(**day, value="(none)")) == "a, plan = (none), 2026-11-03 14:00–15:00 UTC"
    )
    rest = PointQuery(**day, rest=True, exclude=("pro",), exclude_absent=True)
    assert point_description(rest) == "a, plan set and not pro, 2026-11-03 14:00–15:00 UTC"


@pytest.mark.parametrize("user_id", ["dee", "dee/ops"])
def test_a_user_with_more_requests_links_to_their_page_over_the_points_range(
    client, make_person, aggregate_events, user_id
):
    aggregate_events(
        [
            {
                "event": "search_made",
                "service": "tiles",
                "user_id": user_id,
                "correlation_id": f"req-d{i}",
                "timestamp": at(i),
            }
            for i in range(5)
        ]
    )

    html = signed_in(client, make_person, "support").get("/dashboards/users/", POINT).content.decode()

    [more] = re.findall(r'<a href="([^"]+)">more…</a>', html)
    path, _, query = html_unescape(more).partition("?")
    params = dict(parse_qsl(query))
    assert params["range"] == "custom"
    assert (params["start"], params["end"]) == ("2026-11-03T14:00", "2026-11-03T15:00")
    # The ID is the path's segment, or (with a "/") the query's, encoded once either way.
    assert (path, params.get("user_id")) in (("/users/dee/", None), ("/users/-/", "dee/ops"))
    page = client.get(html_unescape(more))
    assert page.status_code == 200
    assert "req-d4" in page.content.decode()
