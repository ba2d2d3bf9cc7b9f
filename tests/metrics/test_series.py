"""Series from the rollups equal a plain GROUP BY over the raw events, for every measure, interval and
breakdown; and the /api/v1/metrics/series endpoint serves them."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from apps.ingest.models import RawEvent
from apps.ingest.services import events_ingest
from apps.metrics.selectors import SeriesQuery, SeriesQueryError, series_for
from apps.pipeline.services import aggregate_chunk

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 16, 22, 30, tzinfo=UTC)  # a Monday evening: days and a week boundary are crossed
EVENTS = ("search_made", "tile_downloaded", "login", "export")


def generated_events(n: int = 700, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        props = {"n_results": rng.randint(0, 50), "country": rng.choice(["NL", "FR", "DE", "US", "BR"])}
        if rng.random() < 0.7:
            props["latency"] = round(rng.uniform(0.01, 3.0), 3)
        if rng.random() < 0.2:
            props["n_results"] = "not a number"  # not summable: ignored by sum and avg
        out.append(
            {
                "event": rng.choice(EVENTS),
                "service": rng.choice(["gateway", "download", "tiles"]),
                "stage": rng.choice(["prod", "staging"]),
                "timestamp": (T0 + timedelta(minutes=rng.randint(0, 8 * 24 * 60))).isoformat(),
                "properties": props,
                **({"user_id": f"u{rng.randint(1, 40)}"} if rng.random() < 0.9 else {}),
            }
        )
    return out


@pytest.fixture
def dataset(make_key):
    events = generated_events()
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    stored = events_ingest(items=events, api_key=api_key, received_at=datetime.now(tz=UTC))
    aggregate_chunk(event_ids=stored.stored_ids)
    return events


def align(moment: datetime, interval: str) -> datetime:
    if interval == "minute":
        return moment.replace(second=0, microsecond=0)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "day" else day - timedelta(days=day.weekday())


def expected(events: list[dict], query: SeriesQuery) -> dict[str, dict[datetime, float | None]]:
    """The straightforward answer: group the raw events in Python."""
    kind, _, prop = query.measure.partition(":")
    group_of = {
        "": lambda e: "event" if len(query.events) > 1 else "total",
        "service": lambda e: e["service"],
        "stage": lambda e: e["stage"],
        "event": lambda e: e["event"],
    }
    cells: dict[str, dict[datetime, list]] = defaultdict(lambda: defaultdict(lambda: [0, 0.0, set()]))
    for e in events:
        ts = datetime.fromisoformat(e["timestamp"])
        if e["event"] not in query.events or not query.start <= ts < query.end:
            continue
        if query.breakdown.startswith("prop:"):
            name = str(e["properties"].get(query.breakdown[5:], "(none)"))
        elif not query.breakdown and len(query.events) > 1:
            name = e["event"]
        else:
            name = group_of[query.breakdown](e)
        cell = cells[name][align(ts, query.interval)]
        if kind in ("sum", "avg"):
            value = e["properties"].get(prop)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            cell[0] += 1
            cell[1] += value
        else:
            cell[0] += 1
            if e.get("user_id"):
                cell[2].add(e["user_id"])

    def measure(cell):
        count, total, users = cell
        return {
            "count": count,
            "sum": total,
            "unique_users": len(users),
            "avg": (total / count) if count else None,
        }[kind]

    def rank_total(name):
        per_bucket = cells[name].values()
        if kind == "unique_users":
            return sum(len(c[2]) for c in per_bucket)
        return sum(c[1] if kind == "sum" else c[0] for c in per_bucket)

    names = sorted(cells, key=lambda n: (-rank_total(n), n))
    if query.breakdown or len(query.events) > 1:
        top, rest = names[: query.top_n], names[query.top_n :]
    else:
        top, rest = names, []
    result = {name: {b: measure(c) for b, c in cells[name].items()} for name in top}
    if rest:
        merged: dict[datetime, list] = defaultdict(lambda: [0, 0.0, set()])
        for name in rest:
            for b, (count, total, users) in cells[name].items():
                merged[b][0] += count
                merged[b][1] += total
                merged[b][2] |= users
        result["other"] = {b: measure(c) for b, c in merged.items()}
    return result


def as_dict(series) -> dict[str, dict[datetime, float | None]]:
    return {s.name: {t: v for t, v in s.points if v not in (0, None)} for s in series}


MEASURES = ["count", "unique_users", "sum:n_results", "avg:latency"]
INTERVALS = ["minute", "hour", "day", "week"]
BREAKDOWNS = ["", "service", "stage", "event", "prop:country"]


def test_rollups_equal_a_group_by_over_raw_events(dataset):
    # One data set, every combination: measure × interval × breakdown (80 series queries).
    for measure in MEASURES:
        for interval in INTERVALS:
            for breakdown in BREAKDOWNS:
                check_against_raw(dataset, measure, interval, breakdown)


def check_against_raw(dataset, measure, interval, breakdown):
    where = f"{measure} by {interval}, breakdown {breakdown!r}"
    start = T0.replace(hour=0, minute=0) - timedelta(days=T0.weekday())  # aligned for every interval
    end = start + (timedelta(days=3) if interval == "minute" else timedelta(weeks=2))
    events = ("search_made", "login", "export") if breakdown != "event" else EVENTS
    query = SeriesQuery(
        events=events, measure=measure, interval=interval, start=start, end=end, breakdown=breakdown, top_n=2
    )

    got = series_for(query)

    want = expected(dataset, query)
    assert [s.name for s in got] == list(want), where  # ranked by total, "other" last
    got_values = as_dict(got)
    for name, points in want.items():
        nonempty = {b: v for b, v in points.items() if v not in (0, None)}
        assert set(got_values[name]) == set(nonempty), (where, name)
        for bucket, value in nonempty.items():
            assert got_values[name][bucket] == pytest.approx(value), (where, name, bucket)
    # every bucket of the range is present, in order
    step = {
        "minute": timedelta(minutes=1),
        "hour": timedelta(hours=1),
        "day": timedelta(days=1),
        "week": timedelta(weeks=1),
    }[interval]
    assert [t for t, _ in got[0].points] == [start + i * step for i in range((end - start) // step)], where


def test_empty_buckets_are_zero_for_counts_and_gaps_for_averages(dataset):
    far = datetime(2026, 1, 5, tzinfo=UTC)
    counts = series_for(
        SeriesQuery(events=("login",), start=far, end=far + timedelta(days=3), interval="day")
    )
    avgs = series_for(
        SeriesQuery(events=("login",), measure="avg:latency", start=far, end=far + timedelta(days=3))
    )

    assert [(s.name, [v for _, v in s.points]) for s in counts] == [("total", [0, 0, 0])]
    assert [v for _, v in avgs[0].points] == [None, None, None]


def test_a_property_filter_narrows_the_series(dataset):
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=10)
    query = SeriesQuery(
        events=EVENTS,
        start=start,
        end=end,
        interval="week",
        filters=(("country", "NL"),),
        breakdown="service",
    )

    got = {s.name: sum(v for _, v in s.points) for s in series_for(query)}

    want = defaultdict(int)
    for e in dataset:
        if e["properties"]["country"] == "NL":
            want[e["service"]] += 1
    assert got == dict(want)


def test_compare_adds_the_previous_period_on_the_same_buckets(dataset):
    start = datetime(2026, 11, 20, tzinfo=UTC)
    got = series_for(
        SeriesQuery(
            events=EVENTS, start=start, end=start + timedelta(days=3), compare=True, breakdown="stage"
        )
    )

    assert {(s.name, s.kind) for s in got[:2]} == {("prod", "value"), ("staging", "value")}
    # The previous period follows, same names in the same order, kind "previous".
    assert [(s.name, s.kind) for s in got[2:]] == [(s.name, "previous") for s in got[:2]]
    prev_total = sum(v for s in got[2:] for _, v in s.points)
    window = [
        e for e in dataset if start - timedelta(days=3) <= datetime.fromisoformat(e["timestamp"]) < start
    ]
    assert prev_total == len(window)
    assert [t for t, _ in got[2].points] == [t for t, _ in got[0].points]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SeriesQuery(events=(), start=T0, end=T0 + timedelta(days=1)), "at least one event"),
        (SeriesQuery(events=("x",), measure="median", start=T0, end=T0 + timedelta(days=1)), "measure"),
        (SeriesQuery(events=("x",), measure="sum", start=T0, end=T0 + timedelta(days=1)), "needs a property"),
        (SeriesQuery(events=("x",), interval="year", start=T0, end=T0 + timedelta(days=1)), "interval"),
        (SeriesQuery(events=("x",), breakdown="prop:", start=T0, end=T0 + timedelta(days=1)), "property"),
        (SeriesQuery(events=("x",), interval="minute", start=T0, end=T0 + timedelta(days=30)), "coarser"),
        (SeriesQuery(events=("x",), start=T0, end=T0 - timedelta(days=1)), "end after"),
    ],
)
def test_bad_queries_say_what_is_wrong(query, message):
    with pytest.raises(SeriesQueryError, match=message):
        series_for(query)


def test_the_series_api_answers_the_design_shape(client, make_person, dataset):
    client.force_login(make_person("product"))

    response = client.get(
        "/api/v1/metrics/series",
        {
            "event": "search_made",
            "measure": "count",
            "interval": "day",
            "from": "2026-11-17T00:00:00Z",
            "to": "2026-11-19T00:00:00Z",
            "breakdown": "service",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert {s["name"] for s in body["series"]} <= {"gateway", "download", "tiles"}
    assert [p["t"] for p in body["series"][0]["points"]] == [
        "2026-11-17T00:00:00+00:00",
        "2026-11-18T00:00:00+00:00",
    ]
    want = sum(
        1
        for e in dataset
        if e["event"] == "search_made" and "2026-11-17" <= e["timestamp"][:10] <= "2026-11-18"
    )
    assert sum(p["v"] for s in body["series"] for p in s["points"]) == want


def test_the_series_api_refuses_bad_input_clearly(client, make_person):
    client.force_login(make_person("product"))

    response = client.get("/api/v1/metrics/series", {"event": "x", "measure": "median"})

    assert response.status_code == 400
    assert "measure" in response.json()["detail"]


def test_the_series_api_is_for_product_people(client, make_person):
    client.force_login(make_person("support"))

    assert client.get("/api/v1/metrics/series", {"event": "x"}).status_code == 403


def test_compare_pairs_every_series_with_the_same_group_in_the_previous_period(make_key):
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    events = [
        {"event": "e", "service": "new-service", "timestamp": (start + timedelta(hours=1)).isoformat()},
        {"event": "e", "service": "old-service", "timestamp": (start - timedelta(hours=1)).isoformat()},
        {"event": "e", "service": "both", "timestamp": (start + timedelta(hours=2)).isoformat()},
        {"event": "e", "service": "both", "timestamp": (start - timedelta(hours=2)).isoformat()},
    ]
    stored = events_ingest(items=events, api_key=api_key, received_at=datetime.now(tz=UTC))
    aggregate_chunk(event_ids=stored.stored_ids)

    got = series_for(
        SeriesQuery(
            events=("e",),
            start=start,
            end=start + timedelta(days=1),
            compare=True,
            breakdown="service",
            top_n=5,
        )
    )

    totals = {(s.name, s.kind): sum(v for _, v in s.points) for s in got}
    assert totals == {
        ("both", "value"): 1,
        ("new-service", "value"): 1,
        ("both", "previous"): 1,
        ("new-service", "previous"): 0,
    }


def test_a_nul_in_series_parameters_is_a_400(client, make_person):
    client.force_login(make_person("product"))

    response = client.get("/api/v1/metrics/series", {"event": "a\x00b"})

    assert response.status_code == 400


YEAR_1 = "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"event": "search_made", "to": YEAR_1}, "to"),  # default from: 7 days earlier
        (
            {
                "event": "search_made",
                "from": "0001-01-01T00:00:00Z",
                "to": "0001-01-02T00:00:00Z",
                "compare": "1",
            },
            "from",
        ),
        ({"event": "search_made", "top": "²"}, "top"),
        ({"event": "search_made", "compare": "maybe"}, "compare"),
        # The calendar's far end: aligning to a week or adding a bucket went past year 9999.
        ({"event": "search_made", "to": "9999-12-31T23:59:59Z", "interval": "week"}, "to"),
        ({"event": "search_made", "from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:59Z"}, "from"),
        ({"event": "search_made", "from": "0001-01-01T00:00:00+01:00"}, "from"),
    ],
)
def test_series_parameters_near_the_calendars_edge_are_400_not_500(client, make_person, params, field):
    # Found by the schema fuzz (tests/fuzz): each of these was a 500.
    client.force_login(make_person("product"))

    response = client.get("/api/v1/metrics/series", params)

    assert response.status_code == 400, response.content
    assert field in response.json()


def stored(make_key, events: list[dict]) -> None:
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    result = events_ingest(items=events, api_key=api_key, received_at=datetime.now(tz=UTC))
    assert not result.rejected, result.rejected
    aggregate_chunk(event_ids=result.stored_ids)


def test_a_breakdown_value_named_other_is_a_value_and_the_rest_is_a_kind(make_key):
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    counts = {"other": 5, "de": 3, "fr": 2, "it": 1}
    stored(
        make_key,
        [
            {"event": "e", "timestamp": day.isoformat(), "properties": {"country": country}}
            for country, n in counts.items()
            for _ in range(n)
        ],
    )

    got = series_for(
        SeriesQuery(events=("e",), start=day, end=day + timedelta(days=1), breakdown="prop:country", top_n=2)
    )

    assert [(s.name, s.kind, sum(v for _, v in s.points)) for s in got] == [
        ("other", "value", 5),
        ("de", "value", 3),
        ("other", "rest", 3),
    ]


def test_the_series_api_says_what_each_series_is(client, make_person, make_key):
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    stored(
        make_key,
        [{"event": "e", "timestamp": day.isoformat(), "properties": {"c": c}} for c in "aabbc"],
    )
    client.force_login(make_person("product"))

    body = client.get(
        "/api/v1/metrics/series",
        {
            "event": "e",
            "breakdown": "prop:c",
            "top": "1",
            "from": "2026-11-20T00:00:00Z",
            "to": "2026-11-21T00:00:00Z",
            "compare": "1",
        },
    ).json()

    assert [(s["name"], s["kind"]) for s in body["series"]] == [
        ("a", "value"),
        ("other", "rest"),
        ("a", "previous"),
        ("other", "previous"),
    ]


def test_thousands_of_breakdown_values_cost_a_group_by_not_a_column_each(make_key):
    start = datetime(2026, 11, 8, tzinfo=UTC)
    stored(
        make_key,
        [
            {
                "event": "e",
                "user_id": f"u{i % 50}",
                "timestamp": (start + timedelta(minutes=i * 4)).isoformat(),
                "properties": {"v": f"value-{i % 2000}", "n": i % 3},
            }
            for i in range(4000)
        ],
    )
    query = dict(events=("e",), start=start, end=start + timedelta(days=12), breakdown="prop:v")

    # Top 50 by minute would be 51 × 17,280 points: refused with a message, before any work.
    with pytest.raises(
        SeriesQueryError, match="choose a coarser interval, a shorter range or a smaller top N"
    ):
        series_for(SeriesQuery(**query, interval="minute", top_n=50))
    for measure in ("count", "unique_users", "sum:n"):
        got = series_for(SeriesQuery(**query, interval="minute", top_n=5, measure=measure))
        assert [s.kind for s in got] == ["value"] * 5 + ["rest"]
        assert all(len(s.points) == 12 * 24 * 60 for s in got)
    counts = series_for(SeriesQuery(**query, interval="hour", top_n=5))
    assert sum(v for s in counts for _, v in s.points) == 4000
    assert [s.name for s in counts[:5]] == [f"value-{i}" for i in sorted(range(2000), key=str)[:5]]


@pytest.mark.parametrize("name", ["-1", "0", "$.a", 'a"b', "a.b", "[0]"])
def test_any_property_name_filters_and_breaks_down_as_a_key(client, make_person, make_key, name):
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    stored(
        make_key,
        [
            {"event": "e", "timestamp": day.isoformat(), "properties": {name: "yes", "n": 2}},
            {"event": "e", "timestamp": day.isoformat(), "properties": {name: "no", "n": 3}},
            {"event": "e", "timestamp": day.isoformat(), "properties": {"other": 1}},
        ],
    )
    client.force_login(make_person("product"))
    window = {"event": "e", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}

    filtered = client.get("/api/v1/metrics/series", {**window, "filter": f"{name}=yes", "measure": "sum:n"})
    broken_down = client.get("/api/v1/metrics/series", {**window, "breakdown": f"prop:{name}"})

    assert filtered.status_code == 200, filtered.content
    assert [sum(p["v"] for p in s["points"]) for s in filtered.json()["series"]] == [2]
    assert broken_down.status_code == 200, broken_down.content
    assert {s["name"]: sum(p["v"] for p in s["points"]) for s in broken_down.json()["series"]} == {
        "(none)": 1,
        "no": 1,
        "yes": 1,
    }


@pytest.mark.parametrize("breakdown", ["service", "prop:country", ""])
def test_a_series_reads_a_fixed_number_of_queries(dataset, django_assert_max_num_queries, breakdown):
    query = SeriesQuery(
        events=EVENTS,
        start=T0,
        end=T0 + timedelta(days=8),
        interval="hour",
        breakdown=breakdown,
        compare=True,
    )

    # Per period: rank the groups, their cells, the rest's cells (no query per group or per bucket).
    with django_assert_max_num_queries(6):
        got = series_for(query)

    assert got


@pytest.mark.parametrize("read", ["minute", "filter", "breakdown"])
@pytest.mark.parametrize("measure", ["sum:n", "avg:n"])
def test_a_number_past_a_doubles_range_is_not_summed_on_raw_reads_either(
    client, make_person, make_key, measure, read
):
    # JSON allows 1 followed by 400 zeros and ingestion stores it; the rollups skip it as not summable, and
    # the reads from raw events (minutes, filters, property breakdowns) must too, not fail on the cast.
    _, key = make_key(service="gateway")
    body = (
        '{"batch": [{"event": "e", "timestamp": "2026-11-16T10:30:00Z", "properties": {"n": 2, "c": "NL"}},'
        ' {"event": "e", "timestamp": "2026-11-16T10:30:10Z", "properties": {"n": 1'
        + "0" * 400
        + ', "c": "NL"}}]}'
    )
    stored = client.generic(
        "POST", "/api/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert (stored.status_code, stored.json()["accepted"]) == (202, 2)
    aggregate_chunk(event_ids=list(RawEvent.objects.values_list("pk", flat=True)))
    client.force_login(make_person("product"))
    extra = {
        "minute": {"interval": "minute"},
        "filter": {"filter": "c=NL"},
        "breakdown": {"breakdown": "prop:c"},
    }
    params = {"event": "e", "measure": measure, "interval": "hour", **extra[read]}

    response = client.get(
        "/api/v1/metrics/series", {**params, "from": "2026-11-16T09:30:00Z", "to": "2026-11-16T11:30:00Z"}
    )

    assert response.status_code == 200, response.content[:300]
    assert sum(point["v"] or 0 for series in response.json()["series"] for point in series["points"]) == 2


@pytest.mark.parametrize("to", ["2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z"])
def test_a_range_ending_before_it_starts_is_refused_even_inside_one_bucket(client, make_person, to):
    # Aligning to the day first widened such a range into its whole day, answered with that day's data.
    client.force_login(make_person("product"))

    response = client.get(
        "/api/v1/metrics/series", {"event": "e", "from": "2026-11-20T12:00:00Z", "to": to, "interval": "day"}
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "the range must end after it starts"}


def test_events_without_the_property_are_a_group_apart_from_the_text_none(client, make_person, make_key):
    """A property that is absent is a field (`absent`), not a name: an event that sends the text "(none)" is
    a value of its own, though both are labelled "(none)"."""
    day = datetime(2026, 11, 20, 12, tzinfo=UTC)
    stored(
        make_key,
        [
            {"event": "e", "user_id": "a1", "timestamp": day.isoformat(), "properties": {"n": 1}},
            {"event": "e", "user_id": "a2", "timestamp": day.isoformat()},
            {"event": "e", "user_id": "a2", "timestamp": day.isoformat(), "properties": {"plan": None}},
            {"event": "e", "user_id": "t1", "timestamp": day.isoformat(), "properties": {"plan": "(none)"}},
            {"event": "e", "user_id": "p1", "timestamp": day.isoformat(), "properties": {"plan": "pro"}},
        ],
    )
    client.force_login(make_person("product"))
    window = {"event": "e", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}

    answer = client.get("/api/v1/metrics/series", {**window, "breakdown": "prop:plan", "compare": "true"})

    assert answer.status_code == 200, answer.content
    got = [
        (s["name"], s["kind"], s["absent"], sum(p["v"] for p in s["points"])) for s in answer.json()["series"]
    ]
    assert got == [
        ("(none)", "value", True, 3),
        ("(none)", "value", False, 1),
        ("pro", "value", False, 1),
        ("(none)", "previous", True, 0),
        ("(none)", "previous", False, 0),
        ("pro", "previous", False, 0),
    ]
    top_one = client.get("/api/v1/metrics/series", {**window, "breakdown": "prop:plan", "top": "1"}).json()
    assert [(s["kind"], s["absent"], sum(p["v"] for p in s["points"])) for s in top_one["series"]] == [
        ("value", True, 3),
        ("rest", False, 2),
    ]
    users = client.get(
        "/api/v1/metrics/series", {**window, "breakdown": "prop:plan", "measure": "unique_users", "top": "1"}
    ).json()
    assert [(s["absent"], sum(p["v"] for p in s["points"])) for s in users["series"]] == [
        (True, 2),
        (False, 2),
    ]
    # A breakdown without a property to miss has no absent group; nor has a chart without a breakdown.
    by_service = client.get("/api/v1/metrics/series", {**window, "breakdown": "service"}).json()
    assert [s["absent"] for s in by_service["series"]] == [False]
