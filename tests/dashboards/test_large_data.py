"""The product pages at a real company's size: many events, many property names, charts of many events.

Each test builds only the limit + 1 of what it needs; what it checks is what a person sees (how many choices
a picker holds and that it says so, how big a page's links are), never a timing.
"""

import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.utils import timezone

from apps.dashboards import overview
from apps.dashboards.selectors import PICKER_EVENTS
from apps.metrics.catalogue import MAX_PROPERTY_NAMES


def figures_in(page: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S)
    return [json.loads(block) for block in blocks]


def events_of(link: str) -> list[str]:
    return parse_qs(urlsplit(unescape(link)).query).get("event", [])


def numbers_of(page: str, title: str) -> str:
    """Return the numbers table (in its disclosure) of the overview's chart whose title starts so."""
    pattern = r'<details class="numbers"><summary>Numbers<span class="visually-hidden">: '
    return re.search(pattern + re.escape(title) + r".*?</details>", page, re.S).group(0)


def a_day_ago() -> str:
    return (timezone.now() - timedelta(days=1)).isoformat()


@pytest.fixture
def many_events(aggregate_events):
    """Twelve events over the last day, the busier the lower their number, under long names."""

    def names(n: int) -> list[str]:
        return [f"event_{i:02d}_" + "x" * 150 for i in range(n)]

    def make(n: int = 12) -> list[str]:
        made = names(n)
        aggregate_events(
            [
                {"service": "web", "event": name, "user_id": f"u{k}", "timestamp": a_day_ago()}
                for i, name in enumerate(made)
                for k in range(n - i)
            ]
        )
        return made

    return make


def explorer_by_event(client, names: list[str]) -> str:
    """Return the explorer's page charting `names` by day over the last three days, broken down by event
    (the top 3, then the rest)."""
    now = timezone.now()
    params = [("event", name) for name in names] + [
        ("breakdown", "event"),
        ("top", "3"),
        ("interval", "day"),
        ("range", "custom"),
        ("start", (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")),
        ("end", now.strftime("%Y-%m-%dT%H:%M")),
    ]
    return client.get("/dashboards/?" + urlencode(params)).content.decode()


def test_a_point_of_one_events_series_links_to_that_event_alone(product_client, many_events):
    """With many events broken down by event, each event's points link to the users of that event: the
    address does not carry every event of the chart (2,000 events × 31 points × 6 series was 2.3 MB)."""
    names = many_events(8)
    page = explorer_by_event(product_client, names)

    traces = figures_in(page)[0]["data"]
    values = [t for t in traces if t["name"] != "other"]
    assert [t["name"] for t in values] == names[:3]
    for trace in values:
        assert {tuple(events_of(link)) for link in trace["customdata"]} == {(trace["name"],)}
    (rest,) = [t for t in traces if t["name"] == "other"]
    assert {tuple(events_of(link)) for link in rest["customdata"]} == {tuple(names[3:])}


def test_the_rest_of_an_event_breakdown_links_to_the_same_users(product_client, many_events):
    names = many_events(4)
    page = explorer_by_event(product_client, names)
    (rest,) = [t for t in figures_in(page)[0]["data"] if t["name"] == "other"]
    link = next(link for link, y in zip(rest["customdata"], rest["y"], strict=True) if y)

    users = product_client.get(unescape(link)).content.decode()

    assert "1 user" in users  # the 4th event was sent by one user: u0


def test_the_overview_events_chart_names_its_top_events_only(product_client, many_events):
    """The overview draws the busiest events: its explorer link and its points name those, not up to 200."""
    names = many_events(12)

    page = product_client.get("/").content.decode()

    link = re.search(r'<a href="(/dashboards/\?[^"]+)">Open in explorer', page).group(1)
    assert events_of(link) == names[: overview.TOP_EVENTS]
    assert len(page) < 250_000


def test_the_overview_charts_have_numbers_tables_linking_to_the_users(product_client, many_events):
    """A keyboard or screen reader user reaches each point's users from a table, as a click on the chart."""
    names = many_events(3)

    page = product_client.get("/").content.decode()

    events_table = numbers_of(page, "Events per day")
    assert 'role="region"' in events_table and 'tabindex="0"' in events_table
    for name in names:
        assert f'<th class="num">{name}</th>' in events_table
    users_links = re.findall(r'<a href="(/dashboards/users/\?[^"]+)"', events_table)
    assert users_links and all(len(events_of(link)) == 1 for link in users_links)

    active_table = numbers_of(page, "Daily active users")
    (link,) = re.findall(r'<a href="(/dashboards/users/\?[^"]+)"', active_table)
    users = product_client.get(unescape(link)).content.decode()
    assert "3 users, most active first." in users

    service_table = numbers_of(page, "Events per service")
    assert "<td>web</td>" in service_table


def test_the_event_picker_lists_the_busiest_events_and_says_how_many_more(product_client, aggregate_events):
    """Thousands of event names are not thousands of checkboxes: the busiest PICKER_EVENTS are listed, the
    page says how many more there are, and any other is found by name."""
    when = a_day_ago()
    names = [f"ev_{i:04d}" for i in range(PICKER_EVENTS + 1)]
    aggregate_events(
        [{"service": "web", "event": name, "timestamp": when} for name in names]
        + [{"service": "web", "event": "ev_0000", "timestamp": when}]
    )

    page = product_client.get("/dashboards/").content.decode()

    boxes = re.findall(r'<input type="checkbox" name="event" value="([^"]+)"', page)
    assert len(boxes) == PICKER_EVENTS
    assert "ev_0000" in boxes
    assert f"The {PICKER_EVENTS} busiest of {PICKER_EVENTS + 1} events are listed" in page
    assert 'id="id_event_other"' in page  # another event, typed by name

    left_out = (set(names) - set(boxes)).pop()
    found = product_client.get("/dashboards/names/events/", {"q": left_out[3:]}).json()
    assert found == {"names": [left_out], "more": False}


def test_an_event_typed_by_name_is_charted(product_client, aggregate_events):
    aggregate_events([{"service": "web", "event": "typed_one", "timestamp": a_day_ago()}])

    page = product_client.get("/dashboards/", {"event": ["typed_one", ""], "range": "7d"}).content.decode()

    assert figures_in(page)[0]["data"][0]["y"].count(1) == 1


def test_the_event_search_is_bounded_and_says_when_there_are_more(product_client, aggregate_events):
    from apps.dashboards.views import NAME_SEARCH_LIMIT

    when = a_day_ago()
    aggregate_events(
        [
            {"service": "web", "event": f"find_{i:03d}", "timestamp": when}
            for i in range(NAME_SEARCH_LIMIT + 1)
        ]
    )

    found = product_client.get("/dashboards/names/events/", {"q": "FIND_"}).json()

    assert len(found["names"]) == NAME_SEARCH_LIMIT and found["more"] is True
    assert found["names"] == sorted(found["names"])


def test_the_event_search_is_for_product_people_only(client, make_person):
    client.force_login(make_person("support"))
    assert client.get("/dashboards/names/events/", {"q": "a"}).status_code == 403


def test_a_search_holding_a_nul_finds_nothing_rather_than_failing(product_client):
    # No stored name holds a NUL (PostgreSQL refuses it in text): the search answers nothing, not a 500.
    names = product_client.get("/dashboards/names/events/", {"q": "a\x00b"})
    boards = product_client.get("/dashboards/d/", {"q": "a\x00b"})

    assert names.status_code == 200 and names.json() == {"names": [], "more": False}
    assert boards.status_code == 200


def test_the_property_picker_says_when_it_lists_only_some_names(product_client, aggregate_events):
    properties = {f"p{i:03d}": "text" for i in range(MAX_PROPERTY_NAMES + 1)}
    aggregate_events(
        [{"service": "web", "event": "wide", "timestamp": a_day_ago(), "properties": properties}]
    )

    page = product_client.get("/dashboards/", {"event": "wide"}).content.decode()

    offered = re.findall(r'<option value="prop:([^"]+)"', page)
    assert len(offered) == MAX_PROPERTY_NAMES
    assert f"The first {MAX_PROPERTY_NAMES} property names" in page


def test_the_overview_reads_a_fixed_number_of_queries(
    product_client, many_events, django_assert_max_num_queries
):
    many_events(12)
    with django_assert_max_num_queries(20):
        assert product_client.get("/").status_code == 200


def test_volume_by_service_draws_the_busiest_services_and_the_others_as_one_bar(
    product_client, aggregate_events
):
    """200 services were 200 bars and a chart 6,000 pixels high: the busiest are drawn, the rest is one bar
    that says how many services it holds, and the numbers table still lists every service."""
    n = overview.TOP_SERVICES + 2
    services = [f"svc-{i:03d}" for i in range(n)]
    aggregate_events(
        [
            {"service": service, "event": "e", "timestamp": a_day_ago()}
            for i, service in enumerate(services)
            for _ in range(n - i)
        ]
    )

    page = product_client.get("/").content.decode()

    (bars,) = [f for f in figures_in(page) if f["data"] and f["data"][0].get("orientation") == "h"]
    drawn = bars["data"][0]["y"][::-1]
    assert drawn == [*services[: overview.TOP_SERVICES], "2 other services"]
    assert bars["data"][0]["x"][0] == 1 + 2  # the two least busy services: 2 events and 1
    assert f"The {overview.TOP_SERVICES} busiest of {n} services are drawn" in page
    service_table = numbers_of(page, "Events per service")
    assert all(f"<td>{service}</td>" in service_table for service in services)


def test_a_chart_whose_addresses_would_be_too_long_is_refused_instead_of_linked(
    product_client, aggregate_events
):
    """A point's address names the chart's events: with many long names it passes what a server reads of a
    request line (gunicorn: 4,094 bytes), and repeated on every point and cell it made pages of 45 MB.
    The explorer refuses such a chart (apps/dashboards/forms.py MAX_QUERY_STRING) and says what to do."""
    from apps.dashboards.drilldown import MAX_LINK_LENGTH

    names = [f"e{i:02d}_" + "y" * 180 for i in range(MAX_LINK_LENGTH // 180 + 1)]
    aggregate_events(
        [{"service": f"s{i % 3}", "event": name, "timestamp": a_day_ago()} for i, name in enumerate(names)]
    )
    params = [("event", name) for name in names] + [("breakdown", "service"), ("range", "7d")]

    response = product_client.get("/dashboards/?" + urlencode(params))

    page = response.content.decode()
    assert response.status_code == 400
    assert "pick fewer events" in page
    assert figures_in(page) == [] and "/dashboards/users/" not in page
    assert len(page) < 400_000


def test_a_chart_of_a_few_events_keeps_its_point_links(product_client, many_events):
    names = many_events(3)
    params = [("event", name) for name in names] + [("breakdown", "service"), ("range", "7d")]

    page = product_client.get("/dashboards/?" + urlencode(params)).content.decode()

    assert all(t.get("customdata") for t in figures_in(page)[0]["data"])
    assert "not linked to their users" not in page


def test_the_dashboard_list_comes_in_pages_and_says_how_many(
    product_client, make_person, django_assert_max_num_queries
):
    """Hundreds of dashboards were one page 19,000 pixels high, the create form under the person's own list:
    each list shows DASHBOARDS_PER_PAGE, says which of how many, and links to the next page."""
    from apps.dashboards import services
    from apps.dashboards.views import DASHBOARDS_PER_PAGE

    me = product_client.get("/dashboards/d/").wsgi_request.user
    someone = make_person("product", username="someone-else")
    for i in range(DASHBOARDS_PER_PAGE + 1):
        services.dashboard_create(name=f"Mine {i:03d}", owner=me)
        services.dashboard_create(name=f"Theirs {i:03d}", owner=someone)

    with django_assert_max_num_queries(12):
        page = product_client.get("/dashboards/d/").content.decode()

    assert page.count('href="/dashboards/d/mine-') == DASHBOARDS_PER_PAGE
    assert page.count('href="/dashboards/d/theirs-') == DASHBOARDS_PER_PAGE
    n = DASHBOARDS_PER_PAGE + 1
    assert f"1–{DASHBOARDS_PER_PAGE} of {n}" in page
    next_page = product_client.get("/dashboards/d/", {"mine_page": 2}).content.decode()
    listed = re.findall(r'href="/dashboards/d/(mine-[^/"]+)/"', next_page)
    assert listed == [f"mine-{DASHBOARDS_PER_PAGE:03d}"]
    assert f"{n}–{n} of {n}" in next_page


def test_the_dashboard_list_finds_a_dashboard_by_name(product_client):
    from apps.dashboards import services

    me = product_client.get("/dashboards/d/").wsgi_request.user
    for name in ("Search funnel", "Signups", "🚀 Launch"):
        services.dashboard_create(name=name, owner=me)

    page = product_client.get("/dashboards/d/", {"q": "LAUNCH"}).content.decode()

    assert re.findall(r'<a href="/dashboards/d/[^"]+">([^<]+)</a>', page) == ["🚀 Launch"]
    assert 'value="LAUNCH"' in page


def test_only_the_series_with_too_long_addresses_lose_their_links(product_client, aggregate_events):
    from apps.dashboards.drilldown import MAX_LINK_LENGTH

    # The rest's address names every value it leaves out: twenty long ones pass MAX_LINK_LENGTH, while each
    # value's own address names one.
    values = [f"v{i:02d}_" + "z" * (MAX_LINK_LENGTH // 15) for i in range(25)]
    aggregate_events(
        [
            {"service": "web", "event": "wide", "timestamp": a_day_ago(), "properties": {"plan": value}}
            for value in values
        ]
    )
    params = [("event", "wide"), ("breakdown", "prop:plan"), ("top", "20"), ("range", "7d")]

    page = product_client.get("/dashboards/?" + urlencode(params)).content.decode()

    traces = figures_in(page)[0]["data"]
    assert [bool(t.get("customdata")) for t in traces if t["name"] != "other"] == [True] * 20
    assert not [t for t in traces if t["name"] == "other"][0].get("customdata")
    assert "Some points of this chart are not linked to their users" in page
