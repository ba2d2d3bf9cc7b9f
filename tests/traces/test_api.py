"""GET /api/v1/traces/<id> and /api/v1/users/<id>/requests, as support staff use them."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.test import override_settings

from tests.conftest import TRACE_BACKENDS

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def two_requests(store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req/1:a",
                "user_id": "u-1",
                "timestamp": at(0),
                "properties": {"path": "/tiles"},
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": "upstream timeout",
                "correlation_id": "req/1:a",
                "timestamp": at(0.5),
            },
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-2",
                "user_id": "u-1",
                "timestamp": at(60),
            },
        ]
    )


def test_a_trace_is_its_events_in_time_order_with_the_canonical_fields(
    support_client, trace_backend, two_requests
):
    response = support_client.get("/api/v1/traces/req/1:a")

    assert response.status_code == 200
    body = response.json()
    assert body["correlation_id"] == "req/1:a"
    assert [e["service"] for e in body["events"]] == ["gateway", "download"]
    first = body["events"][0]
    assert set(first) >= {
        "event_id",
        "type",
        "event",
        "timestamp",
        "user_id",
        "correlation_id",
        "level",
        "message",
        "properties",
        "service",
        "stage",
        "received_at",
        "notes",
    }
    assert first["properties"] == {"path": "/tiles"}
    assert datetime.fromisoformat(first["timestamp"]) == T0


def test_a_traces_spans_carry_their_ids_and_duration(support_client, trace_backend, store_events):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    store_events(
        [
            {
                "service": "gateway",
                "type": "span",
                "event": "GET /tiles",
                "span_id": "00f067aa0ba902b7",
                "parent_span_id": "53995c3f42cd8ad8",
                "duration_ms": 42.5,
                "correlation_id": trace_id,
                "timestamp": at(0),
            },
            {"service": "gateway", "event": "tile_served", "correlation_id": trace_id, "timestamp": at(1)},
        ]
    )

    span, metric = support_client.get(f"/api/v1/traces/{trace_id}").json()["events"]

    assert (span["type"], span["span_id"], span["parent_span_id"], span["duration_ms"]) == (
        "span",
        "00f067aa0ba902b7",
        "53995c3f42cd8ad8",
        42.5,
    )
    assert (metric["type"], metric["span_id"], metric["parent_span_id"], metric["duration_ms"]) == (
        "metric",
        "",
        "",
        None,
    )


def test_an_unknown_trace_is_404_with_a_helpful_message(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/traces/nope-123")

    assert response.status_code == 404
    assert "No events have the correlation ID 'nope-123'" in response.json()["detail"]


def test_a_trace_downloads_as_a_json_file(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/traces/req/1:a?download=1")

    assert response["Content-Disposition"] == 'attachment; filename="trace-req_1_a.json"'


def test_a_users_requests_newest_first_paginated(support_client, trace_backend, two_requests):
    first = support_client.get("/api/v1/users/u-1/requests?per_page=1").json()
    second = support_client.get("/api/v1/users/u-1/requests?per_page=1&page=2").json()

    assert [r["correlation_id"] for r in first["requests"]] == ["req-2"]
    assert (first["total"], first["has_next"]) == (2, True)
    assert [r["correlation_id"] for r in second["requests"]] == ["req/1:a"]
    summary = second["requests"][0]
    assert summary["services"] == ["download", "gateway"]
    assert summary["worst_level"] == "error"
    assert summary["count"] == 2


def test_a_users_requests_within_a_range(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/users/u-1/requests", {"from": at(30), "to": at(3600)})

    assert [r["correlation_id"] for r in response.json()["requests"]] == ["req-2"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-11-25T10:00"}, "to"),
        ({"page": "0"}, "page"),
        ({"per_page": "5000"}, "per_page"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(support_client, params, field):
    response = support_client.get("/api/v1/users/u-1/requests", params)

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("role", ["product"])
def test_other_roles_may_not_read_trails(client, make_person, role, two_requests):
    client.force_login(make_person(role))

    assert client.get("/api/v1/traces/req-2").status_code == 403
    assert client.get("/api/v1/users/u-1/requests").status_code == 403


def test_anonymous_callers_are_refused(client, two_requests):
    assert client.get("/api/v1/traces/req-2").status_code == 401
    assert client.get("/api/v1/users/u-1/requests").status_code == 401


def test_a_nul_in_an_id_is_an_empty_answer_and_still_audited(support_client, trace_backend):
    from apps.accounts.models import AuditEntry

    response = support_client.get("/api/v1/traces/abc%00def")

    assert response.status_code == 404
    assert AuditEntry.objects.get().target == "abc\ufffddef"


# Found by the schema fuzz (tests/fuzz): each of these was a 500.


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("1901-07-02T12:43:57Z", None, ["req-2", "req/1:a"]),  # before date_nanos' 1970
        (None, "2300-01-01T00:00:00Z", ["req-2", "req/1:a"]),  # after date_nanos' 2262
        ("2300-01-01T00:00:00Z", None, []),
        (None, "1900-01-01T00:00:00Z", []),
    ],
)
def test_a_range_beyond_what_the_index_stores_still_answers(
    support_client, trace_backend, two_requests, start, end, expected
):
    params = {name: value for name, value in (("from", start), ("to", end)) if value}

    response = support_client.get("/api/v1/users/u-1/requests", params)

    assert response.status_code == 200, response.content
    assert [r["correlation_id"] for r in response.json()["requests"]] == expected


@pytest.mark.parametrize(
    ("name", "value"), [("from", "0272-07-02T12:43:57Z"), ("to", "9999-12-31T23:59:59Z")]
)
def test_a_time_beyond_what_read_paths_compute_with_is_a_400_naming_it(support_client, name, value):
    response = support_client.get("/api/v1/users/u-1/requests", {name: value})

    assert response.status_code == 400
    assert "out of range" in response.json()[name]


def test_pages_beyond_the_result_window_are_400(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/users/u-1/requests", {"page": "51", "per_page": "200"})

    assert response.status_code == 400
    assert "10000" in response.json()["page"]


def test_a_search_before_anything_was_indexed_is_empty(support_client, clean_search_index, settings):
    from apps.traces.search import _backend_for

    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()

    response = support_client.get("/api/v1/users/u-1/requests")

    _backend_for.cache_clear()
    assert response.status_code == 200, response.content
    assert (response.json()["requests"], response.json()["total"]) == ([], 0)


@pytest.mark.parametrize(("params", "field"), [({"page": "²"}, "page"), ({"download": "maybe"}, "download")])
def test_odd_parameter_values_are_400_not_500(support_client, trace_backend, two_requests, params, field):
    path = "/api/v1/traces/req-2" if field == "download" else "/api/v1/users/u-1/requests"

    response = support_client.get(path, params)

    assert response.status_code == 400
    assert field in response.json()


def test_download_false_is_not_a_download(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/traces/req-2", {"download": "false"})

    assert response.status_code == 200
    assert "Content-Disposition" not in response


def test_an_id_with_a_newline_is_the_apis_json_404(support_client, trace_backend, two_requests):
    response = support_client.get("/api/v1/traces/a%0Ab")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_search_backend_down_is_503_with_retry_after(support_client, two_requests):
    from django.test import override_settings

    from apps.traces.search import _backend_for

    # A context manager, not the settings fixture: the index clean-up afterwards needs the real URL back.
    with override_settings(
        TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"], ELASTICSEARCH_URL="http://127.0.0.1:1"
    ):  # nothing listens on port 1
        _backend_for.cache_clear()
        response = support_client.get("/api/v1/users/u-1/requests")
    _backend_for.cache_clear()

    assert response.status_code == 503
    assert response["Retry-After"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/v1/traces/req-1", "/api/v1/users/u-1/requests"])
def test_a_read_the_search_backend_could_not_answer_is_still_audited(api_client, make_person, path):
    """The entry, sent while Elasticsearch is asked, is committed even when Elasticsearch cannot answer."""
    from django.test import override_settings

    from apps.accounts.models import AuditEntry
    from apps.accounts.services import personal_token_create
    from apps.traces.search import _backend_for

    token = {"HTTP_AUTHORIZATION": f"Bearer {personal_token_create(user=make_person('support'))[1]}"}
    with override_settings(
        TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"], ELASTICSEARCH_URL="http://127.0.0.1:1"
    ):  # nothing listens on port 1
        _backend_for.cache_clear()
        response = api_client.get(path, **token)
    _backend_for.cache_clear()

    assert response.status_code == 503
    assert list(AuditEntry.objects.values_list("target", "via")) == [(path.split("/")[4], "api")]


# Every read is audited, and what a read costs the database does not grow with what it answers.


@pytest.fixture
def support_token(make_person) -> dict[str, str]:
    from apps.accounts.services import personal_token_create

    return {"HTTP_AUTHORIZATION": f"Bearer {personal_token_create(user=make_person('support'))[1]}"}


def test_every_read_is_audited_once(api_client, trace_backend, two_requests, support_token):
    from collections import Counter

    from apps.accounts.models import AuditEntry

    for path, times in (
        ("/api/v1/traces/req-2", 5),
        ("/api/v1/traces/nope", 3),
        ("/api/v1/users/u-1/requests", 4),
    ):
        for _ in range(times):
            api_client.get(path, **support_token)

    entries = AuditEntry.objects.values_list("actor_name", "action", "target", "via")
    assert Counter(entries) == {
        ("support-person", "trail_viewed", "req-2", "api"): 5,
        ("support-person", "trail_viewed", "nope", "api"): 3,
        ("support-person", "user_viewed", "u-1", "api"): 4,
    }
    assert AuditEntry.objects.filter(actor__username="support-person").count() == 12


def _audit_entries_the_database_refuses(monkeypatch) -> None:
    """Make every audit entry one PostgreSQL refuses (an action longer than its column)."""
    from apps.accounts import services

    make = services._new_audit_entry

    def refused(**kwargs):
        entry = make(**kwargs)
        entry.action = "x" * 50
        return entry

    monkeypatch.setattr(services, "_new_audit_entry", refused)


@pytest.mark.parametrize("path", ["/api/v1/traces/req-2", "/api/v1/users/u-1/requests"])
def test_nothing_is_answered_when_the_audit_entry_cannot_be_written(
    api_client, trace_backend, two_requests, support_token, monkeypatch, path
):
    _audit_entries_the_database_refuses(monkeypatch)
    api_client.raise_request_exception = False

    response = api_client.get(path, **support_token)

    assert response.status_code == 500
    assert b"req-2" not in response.content


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_each_read_commits_its_entry_and_a_refused_one_leaves_the_connection_usable(
    api_client, trace_backend, make_person, store_events, monkeypatch
):
    """Requests run in autocommit, where an entry sent ahead of an Elasticsearch search commits on its own
    and a refused one must leave nothing pending; the other tests run inside a transaction."""
    from django.db import connection

    from apps.accounts.models import AuditEntry
    from apps.accounts.services import personal_token_create

    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])
    token = {"HTTP_AUTHORIZATION": f"Bearer {personal_token_create(user=make_person('support'))[1]}"}
    assert connection.get_autocommit()

    assert api_client.get("/api/v1/traces/req-1", **token).status_code == 200
    with monkeypatch.context() as patch:
        _audit_entries_the_database_refuses(patch)
        api_client.raise_request_exception = False
        assert api_client.get("/api/v1/traces/req-1", **token).status_code == 500
    assert api_client.get("/api/v1/users/u-1/requests", **token).status_code == 200

    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "trail_viewed",
        "user_viewed",
    ]


def test_an_id_that_looks_like_sql_is_audited_verbatim(
    api_client, trace_backend, two_requests, support_token
):
    from apps.accounts.models import AuditEntry

    hostile = "x'); DELETE FROM accounts_auditentry; --\\ é"

    response = api_client.get(f"/api/v1/traces/{quote(hostile, safe='')}", **support_token)

    assert response.status_code == 404
    assert list(AuditEntry.objects.values_list("target", flat=True)) == [hostile]


@pytest.fixture
def a_busy_user(store_events):
    """30 requests of user u-busy, the last one 40 events long across three services."""
    events = [
        {
            "service": "gateway",
            "event": "x",
            "correlation_id": f"req-{n}",
            "user_id": "u-busy",
            "timestamp": at(n),
        }
        for n in range(29)
    ]
    events += [
        {
            "service": ("gateway", "tiles", "search")[i % 3],
            "event": "y",
            "correlation_id": "req-long",
            "user_id": "u-busy",
            "timestamp": at(100 + i),
        }
        for i in range(40)
    ]
    store_events(events)


# The audit entry, and on the database backend the reads: nothing per event or request, nothing for the
# token (its grant is cached) or the role check.
TRAIL_QUERIES = {"database": 2, "elasticsearch": 1}
USER_REQUESTS_QUERIES = {"database": 6, "elasticsearch": 1}


def test_a_trail_costs_the_same_few_queries_however_long(
    api_client, trace_backend, a_busy_user, support_token, django_assert_max_num_queries
):
    api_client.get("/api/v1/traces/req-0", **support_token)  # caches the token's grant, notes its use

    with django_assert_max_num_queries(TRAIL_QUERIES[trace_backend]):
        response = api_client.get("/api/v1/traces/req-long", **support_token)

    assert len(response.json()["events"]) == 40


def test_a_users_requests_cost_the_same_few_queries_however_many(
    api_client, trace_backend, a_busy_user, support_token, django_assert_max_num_queries
):
    api_client.get("/api/v1/traces/req-0", **support_token)

    with django_assert_max_num_queries(USER_REQUESTS_QUERIES[trace_backend]):
        response = api_client.get("/api/v1/users/u-busy/requests", **support_token)

    assert response.json()["total"] == 30
    assert len(response.json()["requests"]) == 30
    assert response.json()["requests"][0]["services"] == ["gateway", "search", "tiles"]


def test_an_event_answers_every_field_it_has():
    from dataclasses import fields

    from apps.traces.search.base import TraceEvent

    event = TraceEvent(**{f.name: None for f in fields(TraceEvent)} | {"timestamp": T0, "received_at": T0})

    assert set(event.as_json()) == {f.name for f in fields(TraceEvent)}


@pytest.fixture
def red_day(clean_search_index):
    """Choose Elasticsearch, and return a function that makes the daily index of a day whose one shard is
    never assigned (a red cluster: the node of its primary is gone)."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import alias_name, es_client

    def make(day: str) -> None:
        es_client().indices.create(
            index=f"{alias_name()}-{day}",
            settings={"number_of_replicas": 0, "index.routing.allocation.require._name": "no-such-node"},
            wait_for_active_shards=0,
        )

    with override_settings(TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"]):
        _backend_for.cache_clear()
        yield make
    _backend_for.cache_clear()


@pytest.mark.parametrize("path", ["/api/v1/traces/req/1:a", "/api/v1/users/u-1/requests"])
def test_a_read_that_cannot_reach_every_shard_is_503_not_a_partial_answer(
    support_client, red_day, two_requests, path
):
    # Another day's index is red: these events are all readable, but an answer that skips a shard it
    # could not read may be missing some of them, and must not pass for a whole one.
    red_day("2026.11.26")

    response = support_client.get(path)

    assert response.status_code == 503
