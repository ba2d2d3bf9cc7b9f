"""Funnels are exact on traffic with a known answer (out of order, twice, outside the window, a breakdown),
on PostgreSQL and, through `test_the_same_answers_on_sqlite`, on SQLite; and the funnel API's input and
roles. Tests named `test_exact_*` run on both databases."""

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.metrics.eventrows import EventFilter
from apps.metrics.funnel import FunnelQuery, funnel_for, funnel_step_users
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
START, END = T - timedelta(days=1), T + timedelta(days=2)
WINDOW = timedelta(hours=3)
STEPS = ("search_made", "forecast_requested", "report_exported")
A, B, C = STEPS


def store(user: str, event: str, at: timedelta, service: str = "web", **props) -> None:
    RawEventFactory(user_id=user, event=event, timestamp=T + at, service=service, properties=props)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def known_traffic():
    """Users whose paths say what they test; the expected answer is worked out by hand below."""
    store("u1", A, minutes(0))  # in order, well within the window: 3 steps (10 min, then 20 min)
    store("u1", B, minutes(10))
    store("u1", C, minutes(30))
    store("u2", A, minutes(0))  # step 3 after the window: 2 steps (30 min)
    store("u2", B, minutes(30))
    store("u2", C, minutes(181))
    store("u3", B, minutes(0), service="app")  # b before a (out of order), then c: 1 step
    store("u3", A, minutes(5), service="app")
    store("u3", C, minutes(20), service="app")
    store("u4", A, minutes(0), service="app")  # everything twice: counted once, from the first a
    store("u4", A, minutes(60), service="web")
    store("u4", B, minutes(120), service="app")
    store("u4", B, minutes(125), service="app")
    store("u4", C, minutes(150), service="app")
    store("u4", C, minutes(170), service="app")
    store("u5", A, minutes(0))  # b only within the window of a LATER a: the funnel starts at the first
    store("u5", A, minutes(240))
    store("u5", B, minutes(300))
    store("u6", C, minutes(0))  # never did step 1
    store("u7", A, minutes(0))  # b at the same moment as a: not after it
    store("u7", B, minutes(0))
    store("u8", A, -timedelta(days=2))  # step 1 before the range: not in the funnel
    store("u8", B, minutes(1))
    store("u8", C, minutes(2))
    store("u9", A, minutes(0), service="app")  # c before b: b counts, that c does not
    store("u9", C, minutes(40), service="app")
    store("u9", B, minutes(50), service="app")
    store("", A, minutes(0))  # no user: nobody's path
    store("", B, minutes(1))
    store("u10", A, minutes(0), service="other")  # another service: left out by a service filter
    store("u10", B, minutes(180), service="other")  # exactly at the window's end: counts


def query(**overrides) -> FunnelQuery:
    fields = {"steps": STEPS, "window": WINDOW, "start": START, "end": END, **overrides}
    return FunnelQuery(**fields)


def test_exact_funnel_on_known_traffic(known_traffic):
    funnel = funnel_for(query())

    assert [(s.event, s.count) for s in funnel.steps] == [(A, 8), (B, 5), (C, 2)]
    first, second, third = funnel.steps
    assert (first.conversion, first.conversion_from_previous, first.median_seconds) == (1.0, 1.0, None)
    assert second.conversion == 0.625 and second.conversion_from_previous == 0.625
    assert third.conversion == 0.25 and third.conversion_from_previous == 0.4
    # From a to b: u1 600, u2 1800, u4 7200, u9 3000, u10 10800 s → median 3000.
    assert second.median_seconds == 3000.0
    # From b to c: u1 1200, u4 1800 → the mean of the two middles.
    assert third.median_seconds == 1500.0
    assert funnel.groups == [] and funnel.as_json().keys() == {"steps"}


def test_exact_step_users_converted_and_dropped(known_traffic):
    q = query()

    assert funnel_step_users(q, step=1) == ["u1", "u10", "u2", "u3", "u4", "u5", "u7", "u9"]
    assert funnel_step_users(q, step=3) == ["u1", "u4"]
    assert funnel_step_users(q, step=2, outcome="dropped") == ["u3", "u5", "u7"]
    assert funnel_step_users(q, step=3, outcome="dropped") == ["u10", "u2", "u9"]
    with pytest.raises(ValueError):
        funnel_step_users(q, step=1, outcome="dropped")


def test_exact_breakdown_by_the_service_of_step_one(known_traffic):
    funnel = funnel_for(query(breakdown="service"))

    assert [s.count for s in funnel.steps] == [8, 5, 2]  # the overall funnel does not change
    groups = {g.name: [s.count for s in g.steps] for g in funnel.groups}
    # u4's first a was on app (its second, on web, does not move it).
    assert groups == {"web": [4, 2, 1], "app": [3, 2, 1], "other": [1, 1, 0]}
    assert [g.name for g in funnel.groups] == ["web", "app", "other"]  # most step-1 users first
    assert funnel_step_users(query(breakdown="service"), step=2, group="app") == ["u4", "u9"]

    top = funnel_for(query(breakdown="service", top_n=1))
    assert [g.name for g in top.groups] == ["web"] and top.other_groups == 2


def test_exact_breakdown_by_a_property_and_filters(known_traffic):
    store("u11", A, minutes(0), plan="pro")
    store("u11", B, minutes(1), plan="free")
    store("u12", A, minutes(0), plan="pro")

    by_plan = funnel_for(query(breakdown="prop:plan"))
    groups = {g.name: [s.count for s in g.steps] for g in by_plan.groups}
    assert groups["pro"] == [2, 1, 0] and groups["(none)"] == [8, 5, 2]

    web_only = funnel_for(query(where=EventFilter(service="web")))
    # Only web events: u4 has a (web, 60 min) but its b and c are on app; u3 and u9 are app only.
    assert [s.count for s in web_only.steps] == [7, 3, 1]
    pro_only = funnel_for(query(where=EventFilter(properties=(("plan", "pro"),))))
    assert [s.count for s in pro_only.steps] == [2, 0, 0]  # u11's b says plan=free


def test_exact_a_property_absent_and_the_text_none_are_two_groups(known_traffic):
    """Nobody in the known traffic has a plan; u11 sends the text "(none)", u12 "pro", and u13 did step 1
    twice at one moment, once without a plan and once with "pro": the smallest value present counts."""
    store("u11", A, minutes(0), plan="(none)")
    store("u11", B, minutes(1), plan="(none)")
    store("u12", A, minutes(0), plan="pro")
    store("u13", A, minutes(0))
    store("u13", A, minutes(0), plan="pro")
    q = query(breakdown="prop:plan")

    funnel = funnel_for(q)

    groups = [(g.name, g.absent, [s.count for s in g.steps]) for g in funnel.groups]
    assert groups == [("(none)", True, [8, 5, 2]), ("pro", False, [2, 0, 0]), ("(none)", False, [1, 1, 0])]
    assert [(g["name"], g["absent"]) for g in funnel.as_json()["groups"]] == [
        ("(none)", True),
        ("pro", False),
        ("(none)", False),
    ]
    assert funnel_step_users(q, step=2, absent=True) == ["u1", "u10", "u2", "u4", "u9"]
    assert funnel_step_users(q, step=2, group="(none)") == ["u11"]
    assert funnel_step_users(q, step=1, group="pro") == ["u12", "u13"]
    assert funnel_step_users(q, step=2, outcome="dropped", absent=True) == ["u3", "u5", "u7"]
    with pytest.raises(ValueError):
        funnel_step_users(q, step=2, group="pro", absent=True)


def test_exact_funnel_of_nobody_and_a_repeated_step():
    assert [(s.count, s.conversion) for s in funnel_for(query()).steps] == [(0, None)] * 3
    store("r1", A, minutes(0))
    store("r1", A, minutes(5))
    store("r2", A, minutes(0))
    steps = funnel_for(query(steps=(A, A))).steps
    assert [s.count for s in steps] == [2, 1] and steps[1].median_seconds == 300.0


def reachable(events: list[tuple[str, datetime]], steps: tuple[str, ...], window: timedelta) -> int:
    """The furthest step reachable from the first step-1 event, by trying every sequence (the reference)."""
    firsts = [t for e, t in events if e == steps[0]]
    if not firsts:
        return 0
    t1, best = min(firsts), 1
    for k in range(2, len(steps) + 1):
        candidates = [[t for e, t in events if e == steps[i] and t1 < t <= t1 + window] for i in range(1, k)]
        if any(
            all(a < b for a, b in zip((t1, *path), path, strict=False))
            for path in itertools.product(*candidates)
        ):
            best = k
    return best


def test_exact_generated_traffic_matches_an_exhaustive_search():
    rng = random.Random(16)
    paths: dict[str, list[tuple[str, datetime]]] = {}
    for n in range(60):
        user = f"g{n}"
        for _ in range(rng.randint(1, 7)):
            event = rng.choice((*STEPS, "noise"))
            at = timedelta(minutes=rng.randint(-60, 400))
            store(user, event, at)
            if START <= T + at < END:
                paths.setdefault(user, []).append((event, T + at))
    expected = [0, 0, 0]
    for events in paths.values():
        for k in range(reachable(events, STEPS, WINDOW)):
            expected[k] += 1

    assert [s.count for s in funnel_for(query()).steps] == expected
    assert expected[2] > 0  # the traffic does reach the end


def test_exact_sql_reads_raw_events_in_one_statement(known_traffic, raw_event_reads):
    with raw_event_reads() as reads:
        funnel_for(query(breakdown="service"))

    assert len(reads) == 1


# --- the API ------------------------------------------------------------------------------------------------

URL = "/api/v1/metrics/funnel"
PARAMS = {"steps": ",".join(STEPS), "window": "10800", "from": START.isoformat(), "to": END.isoformat()}


def test_the_api_answers_the_funnel(client, make_person, known_traffic):
    client.force_login(make_person("product"))

    body = client.get(URL, {**PARAMS, "breakdown": "service"}).json()

    assert [(s["event"], s["count"], s["conversion"]) for s in body["steps"]] == [
        (A, 8, 1.0),
        (B, 5, 0.625),
        (C, 2, 0.25),
    ]
    assert body["steps"][1]["median_seconds"] == 3000.0
    assert body["steps"][2]["conversion_from_previous"] == 0.4
    assert [(g["name"], g["kind"], g["steps"][0]["count"]) for g in body["groups"]] == [
        ("web", "value", 4),
        ("app", "value", 3),
        ("other", "value", 1),
    ]
    assert body["other_groups"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": None}, "steps"),
        ({"steps": "a"}, "steps"),
        ({"steps": "a,,b"}, "steps"),
        ({"steps": ",".join("abcdefghi")}, "steps"),
        ({"window": "0"}, "window"),
        ({"window": "1h"}, "window"),
        ({"window": str(91 * 86400)}, "window"),
        ({"breakdown": "event"}, "breakdown"),
        ({"breakdown": "prop:"}, "breakdown"),
        ({"from": "yesterday"}, "from"),
        ({"to": START.isoformat()}, "to"),
        ({"filter": "no-equals-sign"}, "filter"),
        ({"top": "0"}, "top"),
        ({"service": "a\x00b"}, "service"),
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


def test_the_same_answers_on_sqlite(tmp_path):
    """Run this module's and the retention module's exact tests again on SQLite, the embedded mode."""
    if connection.vendor != "postgresql":
        pytest.skip("already on SQLite")
    from tests.metrics.sqlite_run import run_exact_tests_on_sqlite

    done = run_exact_tests_on_sqlite(tmp_path)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.split("\n")[-2], done.stdout[-2000:]
