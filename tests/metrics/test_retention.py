"""Retention cohorts are exact on traffic with a known answer, on PostgreSQL and (test_funnel's
`test_the_same_answers_on_sqlite`) on SQLite; and the retention API's input and roles. Tests named
`test_exact_*` run on both databases."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics import buckets
from apps.metrics.eventrows import EventFilter
from apps.metrics.retention import RetentionQuery, retention_cell_users, retention_for
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

D0 = datetime(2026, 11, 9, tzinfo=UTC)  # a Monday
START, END = D0 + timedelta(hours=10), D0 + timedelta(days=4)  # aligned to days 9 … 12
LOGIN, SEARCH = "login_succeeded", "search_made"


def store(user: str, event: str, day: int, hour: float, service: str = "web") -> None:
    moment = D0 + timedelta(days=day, hours=hour)
    RawEventFactory(user_id=user, event=event, timestamp=moment, service=service)


@pytest.fixture
def known_traffic():
    store("r1", LOGIN, 0, 10)  # cohort day 0; back the same day, the next day (twice) and on day 3
    store("r1", SEARCH, 0, 11)
    store("r1", SEARCH, 1, 9)
    store("r1", SEARCH, 1, 15)
    store("r1", SEARCH, 3, 8)
    store("r2", SEARCH, 0, 9)  # a search before the first login does not count
    store("r2", LOGIN, 0, 12)  # cohort day 0 (the later login does not move it); back on day 2
    store("r2", LOGIN, 1, 12)
    store("r2", SEARCH, 2, 1)
    store("r3", LOGIN, 1, 5)  # cohort day 1; a search at the same moment is not after it; back day 2
    store("r3", SEARCH, 1, 5)
    store("r3", SEARCH, 2, 23.5)
    store("r4", LOGIN, -1, 12)  # a login before the range: cohort of its first login IN the range (day 2)
    store("r4", LOGIN, 2, 12)
    store("r4", SEARCH, 3, 0)
    store("r5", SEARCH, 1, 1)  # never logged in: no cohort
    store("r6", LOGIN, 3, 6)  # cohort day 3; the search after the range's end is not read
    store("r6", SEARCH, 4, 1)
    store("r7", LOGIN, 0, 13, service="other")  # cohort day 0, never back; gone with a service filter
    store("", LOGIN, 0, 13)  # no user


def query(**overrides) -> RetentionQuery:
    fields = {"start_event": LOGIN, "return_event": SEARCH, "start": START, "end": END, **overrides}
    return RetentionQuery(**fields)


def test_exact_daily_cohorts_on_known_traffic(known_traffic):
    retention = retention_for(query())

    got = [(c.start, c.size, c.values) for c in retention.cohorts]
    assert got == [
        (D0, 3, [1, 1, 1, 1]),
        (D0 + timedelta(days=1), 1, [0, 1, 0]),
        (D0 + timedelta(days=2), 1, [0, 1]),
        (D0 + timedelta(days=3), 1, [0]),
    ]
    assert retention.cohorts[0].percentages == [33.33, 33.33, 33.33, 33.33]
    assert retention.as_json()["cohorts"][1] == {
        "start": "2026-11-10T00:00:00+00:00",
        "size": 1,
        "values": [0, 1, 0],
        "percentages": [0.0, 100.0, 0.0],
    }


def test_exact_filters_and_cell_users(known_traffic):
    web = retention_for(query(where=EventFilter(service="web")))
    assert (web.cohorts[0].size, web.cohorts[0].values) == (2, [1, 1, 1, 1])

    assert retention_cell_users(query(), cohort=D0) == ["r1", "r2", "r7"]
    assert retention_cell_users(query(), cohort=D0, offset=2) == ["r2"]
    assert retention_cell_users(query(), cohort=D0 + timedelta(days=1), offset=1) == ["r3"]


def test_exact_weekly_cohorts_with_the_same_start_and_return_event():
    store("w1", LOGIN, 0, 1)  # Monday; again on Wednesday (week 0) and the next Tuesday (week 1)
    store("w1", LOGIN, 2, 1)
    store("w1", LOGIN, 8, 1)
    store("w2", LOGIN, 6, 23)  # Sunday: still week 0; once only
    store("w3", LOGIN, 7, 0)  # Monday of week 1, then again in week 1
    store("w3", LOGIN, 7, 0.5)

    weekly = retention_for(
        query(return_event=LOGIN, start=D0 + timedelta(days=3), end=D0 + timedelta(days=10), interval="week")
    )

    assert [(c.start, c.size, c.values) for c in weekly.cohorts] == [
        (D0, 2, [1, 1]),
        (D0 + timedelta(weeks=1), 1, [1]),
    ]


def test_exact_generated_traffic_matches_a_count_by_hand():
    rng = random.Random(16)
    events: dict[str, list[tuple[str, datetime]]] = {}
    for n in range(50):
        for _ in range(rng.randint(1, 8)):
            event = rng.choice((LOGIN, SEARCH, "noise"))
            moment = D0 + timedelta(minutes=rng.randint(-600, 6 * 24 * 60))
            RawEventFactory(user_id=f"g{n}", event=event, timestamp=moment)
            events.setdefault(f"g{n}", []).append((event, moment))
    start, end = D0, D0 + timedelta(days=5)
    expected: dict[tuple[datetime, int], int] = {}
    for user_events in events.values():
        in_range = sorted((t, e) for e, t in user_events if start <= t < end)
        logins = [t for t, e in in_range if e == LOGIN]
        if not logins:
            continue
        cohort = buckets.floor(logins[0], "day")
        expected[(cohort, -1)] = expected.get((cohort, -1), 0) + 1
        days = {(buckets.floor(t, "day") - cohort).days for t, e in in_range if e == SEARCH and t > logins[0]}
        for k in days:
            expected[(cohort, k)] = expected.get((cohort, k), 0) + 1

    retention = retention_for(query(start=start, end=end))

    for cohort in retention.cohorts:
        assert cohort.size == expected.get((cohort.start, -1), 0)
        assert cohort.values == [expected.get((cohort.start, k), 0) for k in range(len(cohort.values))]
    assert sum(c.size for c in retention.cohorts) > 20


def test_exact_sql_reads_raw_events_in_one_statement(known_traffic, raw_event_reads):
    with raw_event_reads() as reads:
        retention_for(query())

    assert len(reads) == 1


# --- the API ------------------------------------------------------------------------------------------------

URL = "/api/v1/metrics/retention"
PARAMS = {"start_event": LOGIN, "return_event": SEARCH, "from": START.isoformat(), "to": END.isoformat()}


def test_the_api_answers_the_cohorts(client, make_person, known_traffic):
    client.force_login(make_person("product"))

    body = client.get(URL, PARAMS).json()

    assert body["interval"] == "day"
    assert [(c["start"], c["size"], c["values"]) for c in body["cohorts"]] == [
        ("2026-11-09T00:00:00+00:00", 3, [1, 1, 1, 1]),
        ("2026-11-10T00:00:00+00:00", 1, [0, 1, 0]),
        ("2026-11-11T00:00:00+00:00", 1, [0, 1]),
        ("2026-11-12T00:00:00+00:00", 1, [0]),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_event": None}, "start_event"),
        ({"return_event": "  "}, "return_event"),
        ({"interval": "hour"}, "interval"),
        ({"from": "2026-13-01T00:00:00Z"}, "from"),
        ({"to": "2026-11-01T00:00:00Z"}, "to"),
        ({"from": "2020-01-01T00:00:00Z"}, "detail"),  # more than 400 daily cohorts
        ({"filter": "=x"}, "filter"),
    ],
)
def test_the_api_refuses_bad_input_naming_the_parameter(client, make_person, params, field):
    client.force_login(make_person("product"))
    query_params = {k: v for k, v in {**PARAMS, **params}.items() if v is not None}

    response = client.get(URL, query_params)

    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_the_api_is_for_product_and_admin_people(client, api_client, make_person):
    assert api_client.get(URL, PARAMS).status_code in (401, 403)
    client.force_login(make_person("support"))
    assert client.get(URL, PARAMS).status_code == 403
    for role in ("product", "admin"):
        client.force_login(make_person(role))
        assert client.get(URL, PARAMS).status_code == 200
