"""GET /api/v1/metrics/users: the users behind a point of a series — exactly the events the series counted
there, most active first, paged; the same filters and breakdown groups; clear 400s; product only."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import Group

from apps.dashboards.drilldown import point_links
from apps.ingest.services import events_ingest
from apps.metrics.selectors import SeriesQuery, series_for
from apps.pipeline.services import aggregate_chunk
from tests.metrics.test_series import generated_events

pytestmark = pytest.mark.django_db

URL = "/api/v1/metrics/users"
H14 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
BUCKET = {"event": "search_made", "from": "2026-11-03T14:00:00Z", "to": "2026-11-03T15:00:00Z"}


def at(minutes: int) -> str:
    return (H14 + timedelta(minutes=minutes)).isoformat()


KNOWN = [
    # In the 14:00 bucket: u1 three times, u2 twice, u3 once, and one event without a user.
    {
        "event": "search_made",
        "service": "tiles",
        "user_id": "u1",
        "timestamp": at(5),
        "properties": {"plan": "pro"},
    },
    {
        "event": "search_made",
        "service": "tiles",
        "user_id": "u1",
        "timestamp": at(10),
        "properties": {"plan": "pro"},
    },
    {
        "event": "search_made",
        "service": "gateway",
        "user_id": "u1",
        "timestamp": at(50),
        "properties": {"plan": "free"},
    },
    {
        "event": "search_made",
        "service": "gateway",
        "user_id": "u2",
        "timestamp": at(20),
        "properties": {"plan": "free"},
    },
    {
        "event": "search_made",
        "service": "gateway",
        "user_id": "u2",
        "timestamp": at(30),
        "properties": {"plan": "pro"},
    },
    {"event": "search_made", "service": "tiles", "user_id": "u3", "timestamp": at(40)},
    {"event": "search_made", "service": "gateway", "timestamp": at(45), "properties": {"plan": "pro"}},
    # Outside the point: the next bucket, the one before, another event.
    {"event": "search_made", "service": "tiles", "user_id": "u1", "timestamp": at(60)},
    {"event": "search_made", "service": "tiles", "user_id": "u4", "timestamp": at(-1)},
    {"event": "login", "service": "tiles", "user_id": "u5", "timestamp": at(15)},
]


def store(make_key, events: list[dict]) -> None:
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    stored = events_ingest(items=events, api_key=api_key, received_at=datetime.now(tz=UTC))
    assert not stored.rejected, stored.rejected
    aggregate_chunk(event_ids=stored.stored_ids)


@pytest.fixture
def known(make_key):
    store(make_key, KNOWN)


@pytest.fixture
def product(client, make_person):
    client.force_login(make_person("product"))
    return client


def users(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.content
    return [(u["user_id"], u["count"]) for u in response.json()["users"]]


def test_the_users_of_a_point_most_active_first_with_first_and_last(product, known):
    response = product.get(URL, BUCKET)

    assert response.status_code == 200
    assert response.json() == {
        "users": [
            {"user_id": "u1", "count": 3, "first": at(5), "last": at(50)},
            {"user_id": "u2", "count": 2, "first": at(20), "last": at(30)},
            {"user_id": "u3", "count": 1, "first": at(40), "last": at(40)},
        ],
        "next": None,
    }


def test_pages_follow_next_until_null(product, known):
    first = product.get(URL, {**BUCKET, "limit": 2})
    assert users(first) == [("u1", 3), ("u2", 2)]
    next_url = first.json()["next"]
    assert dict(parse_qsl(urlsplit(next_url).query))["offset"] == "2"

    second = product.get(next_url)

    assert users(second) == [("u3", 1)]
    assert second.json()["next"] is None


def test_equal_counts_are_ordered_by_user_id_so_pages_never_overlap(product, make_key):
    store(make_key, [{"event": "e", "user_id": f"user-{i:02d}", "timestamp": at(i)} for i in range(7)])
    seen = []
    url, params = URL, {"event": "e", "from": BUCKET["from"], "to": BUCKET["to"], "limit": 3}
    while url:
        response = product.get(url, params)
        seen += [u for u, _ in users(response)]
        url, params = response.json()["next"], None
    assert seen == [f"user-{i:02d}" for i in range(7)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"breakdown": "service", "value": "tiles"}, [("u1", 2), ("u3", 1)]),
        ({"breakdown": "service", "value": "gateway"}, [("u2", 2), ("u1", 1)]),
        ({"breakdown": "prop:plan", "value": "pro"}, [("u1", 2), ("u2", 1)]),
        ({"breakdown": "prop:plan", "absent": "true"}, [("u3", 1)]),  # events without the property
        ({"breakdown": "prop:plan", "value": "(none)"}, []),  # nobody sent the text "(none)"
        ({"breakdown": "prop:plan", "rest": "true", "exclude": "pro"}, [("u1", 1), ("u2", 1), ("u3", 1)]),
        ({"breakdown": "prop:plan", "rest": "true", "exclude": ["pro", "free"]}, [("u3", 1)]),
        ({"breakdown": "event", "value": "search_made"}, [("u1", 3), ("u2", 2), ("u3", 1)]),
        ({"filter": "plan=free"}, [("u1", 1), ("u2", 1)]),
        ({"filter": "plan=pro", "breakdown": "service", "value": "gateway"}, [("u2", 1)]),
        ({"breakdown": "stage", "value": "nowhere"}, []),
    ],
)
def test_breakdown_groups_and_filters_narrow_the_point(product, known, params, expected):
    assert users(product.get(URL, {**BUCKET, **params})) == expected


@pytest.mark.parametrize("events", [{"event": "search_made,login"}, {"event": ["login", "search_made"]}, {}])
def test_several_events_are_one_point_together_and_none_means_every_event(product, known, events):
    response = product.get(URL, {"from": BUCKET["from"], "to": BUCKET["to"], **events})

    assert users(response) == [("u1", 3), ("u2", 2), ("u3", 1), ("u5", 1)]


def test_among_narrows_a_point_to_another_set_of_users(known):
    """The hook for charts that are not series (a funnel step's users): the point's events, those users."""
    from apps.ingest.models import RawEvent
    from apps.metrics.people import PointQuery, point_events, users_behind

    point = point_events(PointQuery(events=("search_made",), start=H14, end=H14 + timedelta(hours=1)))
    did_login = RawEvent.objects.filter(event="login").values("user_id")  # u5 only: nobody searched
    late = RawEvent.objects.filter(timestamp__gte=H14 + timedelta(minutes=40)).values("user_id")

    assert users_behind(events=point, among=did_login).users == []
    assert [(u.user_id, u.count) for u in users_behind(events=point, among=late).users] == [
        ("u1", 3),
        ("u3", 1),
    ]
    assert [u.user_id for u in users_behind(events=point, among=["u2", "u3", "nobody"]).users] == ["u2", "u3"]


@pytest.mark.parametrize(
    ("query", "measure"),
    [
        ({"breakdown": "service"}, "count"),
        ({"breakdown": "prop:country", "top_n": 2}, "count"),  # two values, then the rest
        ({"breakdown": "stage", "filters": (("country", "NL"),)}, "count"),
        ({}, "count"),
        ({"breakdown": "service", "top_n": 1}, "unique_users"),
        ({"breakdown": "prop:country", "top_n": 2}, "unique_users"),
        ({"interval": "day"}, "unique_users"),
    ],
)
def test_a_points_users_add_up_to_the_series_value(product, make_key, query, measure):
    """Every point's link (the one a click follows) lists users whose counts add up to the point's count,
    and as many users as the unique-users point says."""
    events = generated_events(n=400, seed=11)
    for i, event in enumerate(events):
        event.setdefault("user_id", f"late-{i % 9}")  # every event has a user: counts then add up whole
    store(make_key, events)
    start = datetime(2026, 11, 17, tzinfo=UTC)
    series_query = SeriesQuery(
        events=("search_made", "login"),
        measure=measure,
        interval=query.get("interval", "hour"),
        start=start,
        end=start + timedelta(days=2),
        breakdown=query.get("breakdown", ""),
        filters=query.get("filters", ()),
        top_n=query.get("top_n", 5),
    )
    series = series_for(series_query)
    links = point_links(series_query, series)
    assert any(s.kind == "rest" for s in series) == (query.get("top_n") is not None)

    checked, nonzero = 0, 0
    for s, urls in zip(series, links, strict=True):
        for (t, value), url in zip(s.points, urls, strict=True):
            if not value and t.hour % 7:  # every non-empty point, and some empty ones
                continue
            params = parse_qsl(urlsplit(url).query)
            answer = users(product.get(URL, [*params, ("limit", "200")]))
            if measure == "count":
                assert sum(count for _, count in answer) == value, (s.name, t)
            else:
                assert len(answer) == value, (s.name, t)
            checked += 1
            nonzero += bool(value)
    assert nonzero >= 2 and checked >= 4


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({**BUCKET, "event": ""}, "event"),
        ({**BUCKET, "event": " , "}, "event"),
        ({**BUCKET, "from": "yesterday"}, "from"),
        ({**BUCKET, "from": "2026-11-03T14:00:00"}, "from"),  # no time zone
        ({**BUCKET, "to": "2026-11-03T13:00:00Z"}, "to"),
        ({**BUCKET, "to": "9999-01-01T00:00:00Z"}, "to"),
        ({**BUCKET, "breakdown": "prop:"}, "breakdown"),
        ({**BUCKET, "value": "tiles"}, "value"),
        ({**BUCKET, "rest": "true"}, "rest"),
        ({**BUCKET, "breakdown": "service", "rest": "true", "value": "tiles"}, "rest"),
        ({**BUCKET, "breakdown": "service", "rest": "maybe"}, "rest"),
        ({**BUCKET, "breakdown": "service", "exclude": "tiles"}, "exclude"),
        ({**BUCKET, "breakdown": "service", "rest": "1", "exclude": [str(i) for i in range(51)]}, "exclude"),
        ({**BUCKET, "filter": "plan"}, "filter"),
        ({**BUCKET, "limit": "0"}, "limit"),
        ({**BUCKET, "limit": "201"}, "limit"),
        ({**BUCKET, "offset": "-1"}, "offset"),
        ({**BUCKET, "breakdown": "service", "value": "a\x00b"}, "value"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(product, params, name):
    response = product.get(URL, params)

    assert response.status_code == 400
    assert list(response.json()) == [name], response.json()


def test_anonymous_people_are_refused(client):
    assert client.get(URL, BUCKET).status_code in (401, 403)


@pytest.mark.parametrize(("role", "status"), [("support", 403), ("product", 200), ("admin", 200)])
def test_product_and_admin_may_read_it_support_alone_may_not(client, make_person, known, role, status):
    client.force_login(make_person(role))

    assert client.get(URL, BUCKET).status_code == status


def test_a_personal_token_reads_it_with_its_persons_roles(client, make_person, known):
    from apps.accounts.services import personal_token_create

    _, token = personal_token_create(user=make_person("product"), label="notebook")

    response = client.get(URL, BUCKET, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert users(response) == [("u1", 3), ("u2", 2), ("u3", 1)]


def test_support_with_product_too_may_read_it(client, make_person, known):
    person = make_person("support")
    person.groups.add(Group.objects.get_or_create(name="product")[0])
    client.force_login(person)

    assert client.get(URL, BUCKET).status_code == 200


def test_the_schema_documents_it(client, make_person):
    client.force_login(make_person("product"))

    schema = client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/metrics/users"]["get"]
    assert operation["operationId"] == "metrics_users"
    names = {p["name"] for p in operation["parameters"]}
    assert {
        "event",
        "from",
        "to",
        "breakdown",
        "value",
        "rest",
        "exclude",
        "absent",
        "exclude_absent",
        "filter",
        "limit",
        "offset",
    } <= names
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


# Two users who send the text "(none)" as their plan: a value, not the group of events without a plan; and
# one more event without a plan.
NONE_TEXT = [
    {"event": "search_made", "user_id": "u6", "timestamp": at(7), "properties": {"plan": "(none)"}},
    {"event": "search_made", "user_id": "u6", "timestamp": at(8), "properties": {"plan": "(none)"}},
    {"event": "search_made", "user_id": "u7", "timestamp": at(9), "properties": {"plan": "(none)"}},
    {"event": "search_made", "user_id": "u8", "timestamp": at(55), "properties": {"plan": None}},
]


@pytest.fixture
def known_with_none_text(make_key):
    store(make_key, KNOWN + NONE_TEXT)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"breakdown": "prop:plan", "absent": "true"}, [("u3", 1), ("u8", 1)]),  # without the property
        ({"breakdown": "prop:plan", "value": "(none)"}, [("u6", 2), ("u7", 1)]),  # the text "(none)"
        (
            {"breakdown": "prop:plan", "rest": "true", "exclude": ["pro", "free"]},
            [("u6", 2), ("u3", 1), ("u7", 1), ("u8", 1)],
        ),
        (
            {"breakdown": "prop:plan", "rest": "true", "exclude": ["pro", "free"], "exclude_absent": "true"},
            [("u6", 2), ("u7", 1)],
        ),
        (
            {
                "breakdown": "prop:plan",
                "rest": "true",
                "exclude": ["pro", "(none)"],
                "exclude_absent": "true",
            },
            [("u1", 1), ("u2", 1)],
        ),
        (
            {"breakdown": "prop:plan", "rest": "true", "exclude": ["pro", "(none)"]},
            [("u1", 1), ("u2", 1), ("u3", 1), ("u8", 1)],
        ),
    ],
)
def test_the_absent_group_and_the_text_none_list_their_own_users(
    product, known_with_none_text, params, expected
):
    assert users(product.get(URL, {**BUCKET, **params})) == expected


@pytest.mark.parametrize("top_n", [5, 3, 2, 1])
def test_each_points_link_lists_its_own_groups_users_when_the_property_is_absent_or_the_text_none(
    product, known_with_none_text, top_n
):
    """Over 13:00-16:00, pro (4 events) and the absent group (u4 at 13h, u3 and u8 at 14h, u1 at 15h) tie
    and pro ranks first (a value before the absent group), then the text "(none)" (3), then free (2); the
    rest takes what the top leaves, absent or not."""
    query = SeriesQuery(
        events=("search_made",),
        interval="hour",
        start=H14 - timedelta(hours=1),
        end=H14 + timedelta(hours=2),
        breakdown="prop:plan",
        top_n=top_n,
    )
    series = series_for(query)
    links = point_links(query, series)

    at_14 = {}
    for s, urls in zip(series, links, strict=True):
        label = "rest" if s.kind == "rest" else ("absent" if s.absent else s.name)
        params = parse_qsl(urlsplit(urls[1]).query)
        at_14[label] = users(product.get(URL, [*params, ("limit", "200")]))
        # The users page lists what the chart counted: their counts (and pro's event without a user) add up.
        assert sum(n for _, n in at_14[label]) + (label == "pro") == s.points[1][1], label
    pro, absent = [("u1", 2), ("u2", 1)], [("u3", 1), ("u8", 1)]
    text, free = [("u6", 2), ("u7", 1)], [("u1", 1), ("u2", 1)]
    expected = {
        5: {"pro": pro, "absent": absent, "(none)": text, "free": free},
        3: {"pro": pro, "absent": absent, "(none)": text, "rest": free},
        2: {"pro": pro, "absent": absent, "rest": [("u6", 2), ("u1", 1), ("u2", 1), ("u7", 1)]},
        1: {"pro": pro, "rest": [("u6", 2), ("u1", 1), ("u2", 1), ("u3", 1), ("u7", 1), ("u8", 1)]},
    }
    assert at_14 == expected[top_n]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({**BUCKET, "absent": "true"}, "absent"),  # no breakdown
        ({**BUCKET, "breakdown": "service", "absent": "true"}, "absent"),  # a service is never absent
        ({**BUCKET, "breakdown": "prop:plan", "absent": "true", "value": "pro"}, "absent"),
        ({**BUCKET, "breakdown": "prop:plan", "absent": "true", "rest": "true"}, "absent"),
        ({**BUCKET, "breakdown": "prop:plan", "absent": "maybe"}, "absent"),
        ({**BUCKET, "breakdown": "prop:plan", "exclude_absent": "true"}, "exclude_absent"),
    ],
)
def test_the_absent_group_is_asked_for_in_a_way_that_makes_sense(product, params, name):
    response = product.get(URL, params)

    assert response.status_code == 400
    assert list(response.json()) == [name], response.json()
