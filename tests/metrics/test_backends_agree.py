"""PostgreSQL and SQLite (the embedded mode) give the same analytics answers: series, funnels, retention and
the users behind a point, over one dataset with edge cases (bucket boundaries, users with one event, numbers,
strings, null, huge numbers and unicode in properties), each also equal to a brute-force count of the raw
events. Unique users may differ within HyperLogLog's error on PostgreSQL, where they are flagged `estimate`
(exact here: fewer than ~1,300 users). Tests named `test_exact_*` run on both databases."""

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.db import connection

from tests.conftest import REPO, portal_env
from tests.metrics import backends_grid

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
# Numbers whose JSON text is not what a 15-digit float format writes: a breakdown's groups and a filter's
# value are the number's JSON text, as PostgreSQL's jsonb writes it (plain notation, digits kept).
NUMBERS = {
    "a": 1e-07,
    "b": 0.30000000000000004,
    "c": 0.3,
    "d": 1e16,
    "e": 12345678901234567890,
    "f": -0.0,
    "g": 1.0,
    "h": 1,
    "i": -1.5e-05,
    "j": 1e300,
}
TEXTS = {
    "a": "0.0000001",
    "b": "0.30000000000000004",
    "c": "0.3",
    "d": "10000000000000000",
    "e": "12345678901234567890",
    "f": "0.0",
    "g": "1.0",
    "h": "1",
    "i": "-0.000015",
    "j": "1" + "0" * 300,
}
RANGE = {"from": "2026-11-24T00:00:00Z", "to": "2026-11-25T00:00:00Z"}


@pytest.fixture
def numbers(make_key):
    from apps.ingest.services import events_ingest
    from apps.pipeline.services import aggregate_chunk

    api_key, _ = make_key(service="log-shipper", forwarder=True)
    items = []
    for user, value in NUMBERS.items():
        for event in ("search_made", "tile_downloaded"):
            items.append(
                {
                    "event": event,
                    "service": "gateway",
                    "user_id": user,
                    "timestamp": (T.replace(minute=len(items))).isoformat(),
                    "properties": {"x": value, "n": 1},
                }
            )
    stored = events_ingest(items=items, api_key=api_key, received_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert not stored.rejected
    aggregate_chunk(event_ids=stored.stored_ids)


@pytest.fixture
def product_client(client, make_person):
    client.force_login(make_person("product"))
    return client


def test_exact_a_number_property_groups_and_filters_by_its_json_text(numbers, product_client):
    series = product_client.get(
        "/api/v1/metrics/series",
        {"event": "search_made", "breakdown": "prop:x", "top": 20, "interval": "day", **RANGE},
    ).json()["series"]
    assert {s["name"]: s["points"][0]["v"] for s in series} == {text: 1 for text in TEXTS.values()}

    for user, text in TEXTS.items():
        filtered = product_client.get(
            "/api/v1/metrics/series",
            {"event": "search_made", "filter": f"x={text}", "measure": "sum:n", "interval": "day", **RANGE},
        ).json()["series"]
        assert filtered[0]["points"][0]["v"] == 1, text
        users = product_client.get(
            "/api/v1/metrics/users",
            {"event": "search_made", "breakdown": "prop:x", "value": text, **RANGE},
        ).json()["users"]
        assert [u["user_id"] for u in users] == [user], text

    funnel = product_client.get(
        "/api/v1/metrics/funnel",
        {"steps": "search_made,tile_downloaded", "breakdown": "prop:x", "top": 20, **RANGE},
    ).json()
    assert {g["name"]: [s["count"] for s in g["steps"]] for g in funnel["groups"]} == {
        text: [1, 1] for text in TEXTS.values()
    }
    retention = product_client.get(
        "/api/v1/metrics/retention",
        {"start_event": "search_made", "return_event": "tile_downloaded", "filter": "x=0.0000001", **RANGE},
    ).json()
    assert [(c["size"], c["values"]) for c in retention["cohorts"]] == [(1, [1])]


@pytest.fixture
def plans(make_key):
    """Events of users without a plan (absent, or JSON null), with the text "(none)", and with "pro"."""
    from apps.ingest.services import events_ingest
    from apps.pipeline.services import aggregate_chunk

    api_key, _ = make_key(service="log-shipper", forwarder=True)
    rows = [
        ("a1", {}),
        ("a1", {"plan": None}),
        ("a2", {}),
        ("t1", {"plan": "(none)"}),
        ("p1", {"plan": "pro"}),
    ]
    items = [
        {
            "event": event,
            "service": "gateway",
            "user_id": user,
            "timestamp": T.replace(minute=2 * n + k).isoformat(),
            "properties": props,
        }
        for n, (user, props) in enumerate(rows)
        for k, event in enumerate(("search_made", "tile_downloaded"))
    ]
    stored = events_ingest(items=items, api_key=api_key, received_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert not stored.rejected
    aggregate_chunk(event_ids=stored.stored_ids)


def test_exact_events_without_the_property_and_the_text_none_are_two_groups(plans, product_client):
    series = product_client.get(
        "/api/v1/metrics/series",
        {"event": "search_made", "breakdown": "prop:plan", "interval": "day", **RANGE},
    ).json()["series"]
    assert [(s["name"], s["absent"], s["points"][0]["v"]) for s in series] == [
        ("(none)", True, 3),
        ("(none)", False, 1),
        ("pro", False, 1),
    ]

    def users(**params) -> list[str]:
        answer = product_client.get(
            "/api/v1/metrics/users", {"event": "search_made", "breakdown": "prop:plan", **params, **RANGE}
        )
        assert answer.status_code == 200, answer.content
        return [u["user_id"] for u in answer.json()["users"]]

    assert users(absent="true") == ["a1", "a2"]
    assert users(value="(none)") == ["t1"]
    assert users(rest="true", exclude="pro") == ["a1", "a2", "t1"]
    assert users(rest="true", exclude="pro", exclude_absent="true") == ["t1"]

    funnel = {"steps": "search_made,tile_downloaded", "breakdown": "prop:plan", **RANGE}
    groups = product_client.get("/api/v1/metrics/funnel", funnel).json()["groups"]
    assert [(g["name"], g["absent"], g["steps"][1]["count"]) for g in groups] == [
        ("(none)", True, 2),
        ("(none)", False, 1),
        ("pro", False, 1),
    ]
    step_users = {"steps": funnel["steps"], "breakdown": "prop:plan", "step": 2, **RANGE}
    absent = product_client.get("/api/v1/metrics/users", {**step_users, "absent": "true"}).json()["users"]
    text = product_client.get("/api/v1/metrics/users", {**step_users, "group": "(none)"}).json()["users"]
    assert [u["user_id"] for u in absent] == ["a1", "a2"] and [u["user_id"] for u in text] == ["t1"]


def _sqlite_env(tmp_path) -> dict[str, str]:
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)
    env.pop("SKYWATCH_REQUIRE_SERVICES", None)
    return env


def test_the_known_answers_hold_on_sqlite_too(tmp_path):
    """Run this module's `test_exact_*` again on SQLite, the embedded mode."""
    if connection.vendor != "postgresql":
        pytest.skip("already on SQLite")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "exact", __file__]
    done = subprocess.run(
        command, cwd=REPO, env=_sqlite_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.split("\n")[-2], done.stdout[-2000:]


def test_every_analytics_answer_is_the_same_on_both_databases_and_as_counted_by_hand(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("compares PostgreSQL with a child process on SQLite")
    backends_grid.load(objects=False)
    on_postgresql = backends_grid.answers(small=True)
    out = tmp_path / "sqlite.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.metrics.backends_grid", str(out), "--small"],
        cwd=REPO,
        env=_sqlite_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    on_sqlite = json.loads(out.read_text())

    assert backends_grid.brute_mismatches(on_postgresql)[:3] == []
    assert on_sqlite["brute_mismatches"][:3] == []
    differing = backends_grid.differences(on_postgresql, on_sqlite["answers"])
    shown = [(key, on_postgresql.get(key), on_sqlite["answers"].get(key)) for key in differing[:2]]
    assert differing[:5] == [], shown
    # Unique users from sketches are flagged as estimates on PostgreSQL, never on SQLite (exact).
    flags = {
        (database, s["estimate"])
        for database, answers in (("postgresql", on_postgresql), ("sqlite", on_sqlite["answers"]))
        for key, answer in answers.items()
        if key.startswith("series?") and "series" in answer
        for s in answer["series"]
    }
    assert flags == {("postgresql", True), ("postgresql", False), ("sqlite", False)}
