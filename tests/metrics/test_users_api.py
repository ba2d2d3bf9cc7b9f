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
        ({"breakdown": "prop:plan", "value": "(none)"}, [("u3", 1)]),  # events without the property
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
        ({**BUCKET, "breakdown": "colour"}, "breakdown"),
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
        "filter",
        "limit",
        "offset",
    } <= names
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
