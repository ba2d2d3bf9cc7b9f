"""POST /api/v1/events and /api/v1/batch, as a sending service sees them."""

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.actors import Actor
from apps.ingest.models import ApiKey, RawEvent
from apps.ingest.services import service_key_revoke
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db


def post(client, path, body, key=None, *, raw=None, headers=None, content_type="application/json"):
    extra = dict(headers or {})
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body)
    return client.generic("POST", path, data, content_type=content_type, **extra)


def test_one_event_is_stored_with_202(api_client, make_key):
    _, key = make_key()
    event_id = str(uuid.uuid4())

    response = post(
        api_client,
        "/api/v1/events",
        {
            "event_id": event_id,
            "event": "search_made",
            "user_id": 1234,
            "timestamp": "2026-11-26T10:15:00Z",
            "properties": {"query": "ships", "n_results": 12},
        },
        key,
    )

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "event_id": event_id}
    stored = RawEvent.objects.get(event_id=event_id)
    assert (stored.service, stored.stage, stored.type, stored.event) == (
        "search-api",
        "prod",
        "metric",
        "search_made",
    )
    assert stored.user_id == "1234"
    assert stored.timestamp == datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
    assert stored.properties == {"query": "ships", "n_results": 12}
    assert "user_id number stored as text" in stored.notes


def test_the_lessons_log_record_from_a_forwarder(api_client, make_key):
    make_key(service="download-server")
    _, shipper_key = make_key(service="log-shipper", forwarder=True)

    response = post(
        api_client,
        "/api/v1/events",
        {
            "message": "Downloaded img",
            "userId": "1234",
            "imgId": "1d3x5",
            "service": "download-server",
            "time": "1509385330",
        },
        shipper_key,
    )

    assert response.status_code == 202, response.content
    stored = RawEvent.objects.get()
    assert stored.user_id == "1234"
    assert stored.timestamp == datetime(2017, 10, 30, 17, 42, 10, tzinfo=UTC)
    assert stored.service == "download-server"
    assert stored.properties == {"imgId": "1d3x5"}
    assert stored.type == "log"
    assert stored.message == "Downloaded img"
    assert "userId renamed to user_id" in stored.notes
    assert "time renamed to timestamp" in stored.notes


def test_forwarding_without_the_scope_is_403(api_client, make_key):
    _, key = make_key(service="search-api")

    response = post(api_client, "/api/v1/events", {"message": "x", "service": "download-server"}, key)

    assert response.status_code == 403
    assert "forwarder key" in response.json()["errors"]["service"]
    assert RawEvent.objects.count() == 0


def test_forwarding_in_a_batch_rejects_only_the_out_of_scope_items(api_client, make_key):
    _, key = make_key(service="search-api")

    response = post(
        api_client,
        "/api/v1/batch",
        {
            "batch": [
                {"event": "search_made"},
                {"event": "download", "service": "download-server"},
            ]
        },
        key,
    )

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1
    assert "forwarder key" in body["rejected"][0]["errors"]["service"]


def test_mixed_batch_keeps_the_valid_items_and_lists_each_rejected_one(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        {
            "batch": [
                {"event": "search_made", "user_id": "u1"},
                {"event": "search_made", "timestamp": "yesterday-ish"},
                "not an object",
                {"type": "log", "level": "error", "message": "tile cache miss"},
                {"event": "x", "event_id": "not-a-uuid", "properties": [1, 2]},
            ]
        },
        key,
    )

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    rejected = {item["index"]: item["errors"] for item in body["rejected"]}
    assert set(rejected) == {1, 2, 4}
    assert "is not ISO-8601" in rejected[1]["timestamp"]
    assert rejected[2] == {"item": "must be a JSON object, got a string"}
    assert set(rejected[4]) == {"event_id", "properties"}
    assert RawEvent.objects.count() == 2


def test_a_bare_array_is_a_batch(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", [{"event": "a"}, {"event": "b"}], key)

    assert response.status_code == 202
    assert response.json()["accepted"] == 2


def test_a_resent_batch_is_reported_as_duplicates_and_stored_once(api_client, make_key):
    _, key = make_key()
    batch = {"batch": [{"event": "search_made", "event_id": str(uuid.uuid4())} for _ in range(3)]}

    first = post(api_client, "/api/v1/batch", batch, key)
    second = post(api_client, "/api/v1/batch", batch, key)

    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert second.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    assert RawEvent.objects.count() == 3


def test_the_same_event_twice_in_one_batch_is_stored_once(api_client, make_key):
    _, key = make_key()
    event = {"event": "search_made", "event_id": str(uuid.uuid4())}

    response = post(api_client, "/api/v1/batch", [event, event], key)

    assert response.json() == {"accepted": 1, "duplicates": 1, "rejected": []}


def test_the_same_event_id_from_two_services_is_two_events(api_client, make_key):
    _, key_a = make_key(service="svc-a")
    _, key_b = make_key(service="svc-b")
    event = {"event": "search_made", "event_id": str(uuid.uuid4())}

    post(api_client, "/api/v1/events", event, key_a)
    response = post(api_client, "/api/v1/events", event, key_b)

    assert response.json()["accepted"] == 1
    assert RawEvent.objects.count() == 2


def test_a_batch_is_one_insert_statement(api_client, make_key):
    _, key = make_key()
    batch = [{"event": "search_made", "user_id": f"u{i}", "properties": {"n": i}} for i in range(500)]

    with CaptureQueriesContext(connection) as queries:
        response = post(api_client, "/api/v1/batch", batch, key)

    assert response.json()["accepted"] == 500
    # One statement (on PostgreSQL, ON CONFLICT DO NOTHING against the partition's own unique key).
    inserts = [q["sql"] for q in queries.captured_queries if 'INSERT INTO "ingest_rawevent"' in q["sql"]]
    assert len(inserts) == 1
    # key lookup, savepoints and the insert; never a query per event
    assert len(queries.captured_queries) <= 8


def test_unicode_and_emoji_survive(api_client, make_key):
    _, key = make_key()
    text = "Téléchargé 画像 🛰️🚢 — ok"

    response = post(
        api_client,
        "/api/v1/events",
        {"event": "download", "message": text, "properties": {"ключ": "値 🌾"}},
        key,
    )

    assert response.status_code == 202
    stored = RawEvent.objects.get()
    assert stored.message == text
    assert stored.properties == {"ключ": "値 🌾"}


def test_nul_characters_are_replaced_and_lone_surrogates_refused_clearly(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        raw='[{"event": "a\\u0000b", "properties": {"k\\u0000": "v\\u0000"}},'
        ' {"event": "x", "message": "\\ud800"}, {"event": "fine"}]',
        key=key,
        body=None,
    )

    body = response.json()
    assert response.status_code == 202
    assert body["accepted"] == 2
    assert [item["index"] for item in body["rejected"]] == [1]
    assert "surrogate" in body["rejected"][0]["errors"]["message"]
    stored = RawEvent.objects.get(event="a\ufffdb")
    assert stored.properties == {"k\ufffd": "v\ufffd"}
    assert any("NUL characters (\\u0000) replaced by U+FFFD" in note for note in stored.notes), stored.notes


def test_a_lone_surrogate_in_a_property_key_refuses_its_item_and_the_answer_still_renders(
    api_client, make_key
):
    _, key = make_key()
    sibling = str(uuid.uuid4())

    response = post(
        api_client,
        "/api/v1/batch",
        raw='[{"event": "ok", "event_id": "' + sibling + '"},'
        ' {"event": "bad", "properties": {"\\udfff": 1}}]',
        key=key,
        body=None,
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 1
    [(path, message)] = body["rejected"][0]["errors"].items()
    assert path == "properties.\\udfff"
    assert "surrogate" in message
    assert RawEvent.objects.filter(event_id=sibling).exists()


@pytest.mark.parametrize(
    "extreme", ["9999-12-31T23:59:59+00:00", "9999-12-31T12:00:00.5Z", "9999-12-31T23:59:59.999999+00:00"]
)
def test_the_calendars_last_day_is_clamped_even_when_the_clock_skew_would_move_it_past_9999(
    api_client, make_key, extreme
):
    _, key = make_key()
    now = datetime.now(UTC)
    behind = timedelta(hours=13)  # the sender's clock: correcting for it adds 13 h
    batch = {"sent_at": (now - behind).isoformat(), "batch": [{"event": "extreme", "timestamp": extreme}]}

    response = post(api_client, "/api/v1/batch", batch, key)

    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1
    stored = RawEvent.objects.get()
    assert stored.timestamp == stored.received_at
    assert any(note.startswith("timestamp clamped to the received time") for note in stored.notes)
    assert any("not corrected: the timestamp would leave the calendar" in note for note in stored.notes)


@pytest.mark.parametrize("extreme", ["0001-01-01T00:00:00+00:00", -62135596800])
def test_the_calendars_first_day_with_clock_skew_refuses_only_its_item(api_client, make_key, extreme):
    _, key = make_key()
    now = datetime.now(UTC)
    ahead = timedelta(hours=1)  # the sender's clock: correcting for it moves year 1 before its start
    batch = {
        "sent_at": (now + ahead).isoformat(),
        "batch": [
            {"event": "before", "timestamp": (now + ahead).isoformat()},
            {"event": "extreme", "timestamp": extreme},
            {"event": "after"},
        ],
    }

    response = post(api_client, "/api/v1/batch", batch, key)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 2
    assert [item["index"] for item in body["rejected"]] == [1]
    assert "before 2000-01-01" in body["rejected"][0]["errors"]["timestamp"]
    assert set(RawEvent.objects.values_list("event", flat=True)) == {"before", "after"}


@pytest.mark.parametrize("number", ["1e400", "-1e400", "9" * 5000, "-" + "9" * 5000])
def test_a_number_out_of_range_refuses_only_its_item(api_client, make_key, number):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        raw='[{"event": "ok"}, {"event": "huge", "properties": {"n": ' + number + '}}, {"event": "also-ok"}]',
        key=key,
        body=None,
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 2
    [rejected] = body["rejected"]
    assert rejected["index"] == 1
    assert "out of range" in rejected["errors"]["properties.n"]


def test_deep_nesting_is_refused_per_item(api_client, make_key):
    _, key = make_key()
    deep: dict = {}
    node = deep
    for _ in range(30):
        node["a"] = {}
        node = node["a"]

    response = post(
        api_client, "/api/v1/batch", [{"event": "deep", "properties": deep}, {"event": "ok"}], key
    )

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert "nested deeper than 16 levels" in json.dumps(body["rejected"][0]["errors"])


def test_pathologically_deep_json_is_a_400_not_a_crash(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/events", None, key, raw="[" * 200_000 + "]" * 200_000)

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


def test_a_33_kb_event_is_refused_and_its_neighbours_kept(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        [
            {"event": "big", "message": "x" * (33 * 1024)},
            {"event": "small"},
        ],
        key,
    )

    body = response.json()
    assert body["accepted"] == 1
    assert "the limit is 32768 bytes" in body["rejected"][0]["errors"]["item"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused(api_client, make_key, literal):
    _, key = make_key()

    response = post(
        api_client, "/api/v1/events", None, key, raw=f'{{"event": "x", "properties": {{"v": {literal}}}}}'
    )

    assert response.status_code == 400
    assert RawEvent.objects.count() == 0


def test_gzip_body_is_accepted(api_client, make_key):
    _, key = make_key()
    body = gzip.compress(json.dumps({"batch": [{"event": "zipped"}] * 3}).encode())

    response = post(
        api_client, "/api/v1/batch", None, key, raw=body, headers={"HTTP_CONTENT_ENCODING": "gzip"}
    )

    assert response.status_code == 202
    assert response.json()["accepted"] == 3


def test_a_gzip_bomb_is_413_without_inflating_it(api_client, make_key):
    _, key = make_key()
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024

    response = post(
        api_client, "/api/v1/batch", None, key, raw=bomb, headers={"HTTP_CONTENT_ENCODING": "gzip"}
    )

    assert response.status_code == 413
    assert "Decompressed body" in response.json()["detail"]


def test_broken_gzip_is_400(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        None,
        key,
        raw=b"\x1f\x8bnot really",
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )

    assert response.status_code == 400


def test_an_unsupported_content_encoding_is_415(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client, "/api/v1/batch", [{"event": "a"}], key, headers={"HTTP_CONTENT_ENCODING": "br"}
    )

    assert response.status_code == 415


def test_a_body_over_1_mb_is_413(api_client, make_key):
    _, key = make_key()
    batch = [{"event": "e", "message": "x" * 2000} for _ in range(600)]

    response = post(api_client, "/api/v1/batch", batch, key)

    assert response.status_code == 413
    assert RawEvent.objects.count() == 0


def test_more_than_1000_events_is_413(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", [{"event": "e"}] * 1001, key)

    assert response.status_code == 413
    assert "limit is 1000" in response.json()["detail"]


def test_wrong_content_type_is_415(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/events", None, key, raw="event=x", content_type="text/plain")

    assert response.status_code == 415


@pytest.mark.parametrize("raw", ['{"event": ', "", '{"batch": {"event": "x"}}', '{"events": []}', "[]"])
def test_malformed_bodies_are_400_with_a_reason(api_client, make_key, raw):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", None, key, raw=raw)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_unexpected_envelope_keys_are_named_in_a_400_even_when_they_are_not_unicode(api_client, make_key):
    _, key = make_key()
    raw = '{"batch": [{"event": "x"}], "\\ud800": 1, "' + "k" * 500 + '": 2}'

    response = post(api_client, "/api/v1/batch", None, key, raw=raw)

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "\\ud800" in detail and "k" * 60 + "…" in detail and "k" * 61 not in detail
    assert RawEvent.objects.count() == 0


def test_no_key_is_401(api_client, db):
    response = post(api_client, "/api/v1/events", {"event": "x"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_key_is_401(api_client, make_key):
    make_key()

    response = post(api_client, "/api/v1/events", {"event": "x"}, "swk_deadbeef_not-a-real-key")

    assert response.status_code == 401


def test_a_key_in_x_api_key_works(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/events", {"event": "x"}, headers={"HTTP_X_API_KEY": key})

    assert response.status_code == 202


def test_a_revoked_key_is_403_on_the_next_request(api_client, make_key):
    api_key, key = make_key()
    assert post(api_client, "/api/v1/events", {"event": "x"}, key).status_code == 202

    service_key_revoke(api_key=api_key, actor=Actor.command("tests"))
    response = post(api_client, "/api/v1/events", {"event": "x"}, key)

    assert response.status_code == 403
    assert "revoked" in response.json()["detail"]


def test_use_is_recorded_on_the_key(api_client, make_key):
    api_key, key = make_key()

    post(api_client, "/api/v1/events", {"event": "x"}, key)

    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


def test_throttled_key_gets_429_with_retry_after(api_client, make_key, settings):
    settings.INGEST_RATE_LIMIT = "3/min"
    _, key = make_key()
    _, other_key = make_key(service="other")

    answers = [post(api_client, "/api/v1/events", {"event": "x"}, key).status_code for _ in range(4)]
    throttled = post(api_client, "/api/v1/events", {"event": "x"}, key)

    assert answers[:3] == [202, 202, 202]
    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert post(api_client, "/api/v1/events", {"event": "x"}, other_key).status_code == 202
    assert RawEvent.objects.count() == 4


def test_with_the_cache_down_events_are_still_stored(api_client, make_key, settings):
    _, key = make_key()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }

    response = post(api_client, "/api/v1/batch", [{"event": "x"}, {"event": "y"}], key)

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert RawEvent.objects.count() == 2


def test_correlation_header_applies_to_events_without_their_own_and_is_echoed(api_client, make_key):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        [
            {"event": "a"},
            {"event": "b", "correlation_id": "own-id"},
        ],
        key,
        headers={"HTTP_X_CORRELATION_ID": "req-12345"},
    )

    assert response["X-Correlation-ID"] == "req-12345"
    assert dict(RawEvent.objects.values_list("event", "correlation_id")) == {"a": "req-12345", "b": "own-id"}


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "HTTP_X_CORRELATION_ID": "req-1",
                "HTTP_CORRELATION_ID": "guid-1",
                "HTTP_TRACEPARENT": TRACEPARENT,
            },
            "req-1",
        ),
        ({"HTTP_CORRELATION_ID": "guid-1", "HTTP_TRACEPARENT": TRACEPARENT}, "guid-1"),
        ({"HTTP_TRACEPARENT": TRACEPARENT}, TRACE_ID),
        # A malformed header is passed over for the next one; a malformed traceparent gives none at all.
        ({"HTTP_X_CORRELATION_ID": "bad id", "HTTP_CORRELATION_ID": "guid-1"}, "guid-1"),
        ({"HTTP_X_CORRELATION_ID": "<x>", "HTTP_TRACEPARENT": TRACEPARENT}, TRACE_ID),
        ({"HTTP_TRACEPARENT": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, ""),
        ({"HTTP_TRACEPARENT": "not a traceparent"}, ""),
    ],
    ids=["x-correlation-id", "django-guid", "traceparent", "bad-x", "bad-x-then-traceparent", "zero", "junk"],
)
def test_events_without_a_correlation_id_take_the_requests_by_precedence(
    api_client, make_key, headers, expected
):
    _, key = make_key()

    response = post(
        api_client,
        "/api/v1/batch",
        [{"event": "a"}, {"event": "b", "correlation_id": "own"}],
        key,
        headers=headers,
    )

    assert response.status_code == 202, response.content
    assert dict(RawEvent.objects.values_list("event", "correlation_id")) == {"a": expected, "b": "own"}
    notes = RawEvent.objects.get(event="a").notes
    assert ("correlation_id taken from the request's correlation header" in notes) == bool(expected)


def test_spans_are_stored_with_their_ids_and_duration_beside_other_events(api_client, make_key):
    _, key = make_key()
    span = {
        "type": "span",
        "event": "GET /tiles",
        "span_id": "00F067AA0BA902B7",
        "parent_span_id": "53995c3f42cd8ad8",
        "duration_ms": 12.5,
        "correlation_id": TRACE_ID,
        "level": "error",
    }

    response = post(api_client, "/api/v1/batch", [span, {"event": "search_made"}], key)

    assert response.status_code == 202 and response.json()["accepted"] == 2, response.content
    stored = RawEvent.objects.get(type="span")
    assert (stored.span_id, stored.parent_span_id, stored.duration_ms, stored.level) == (
        "00f067aa0ba902b7",
        "53995c3f42cd8ad8",
        12.5,
        "error",
    )
    assert "span_id read as 00f067aa0ba902b7" in stored.notes
    metric = RawEvent.objects.get(type="metric")
    assert (metric.span_id, metric.parent_span_id, metric.duration_ms) == ("", "", None)


def test_a_batch_without_spans_leaves_the_span_columns_to_their_defaults(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", [{"event": "a", "span_id": "abc"}, {"message": "b"}], key)

    assert response.json()["accepted"] == 2
    assert set(RawEvent.objects.values_list("span_id", "parent_span_id", "duration_ms")) == {("", "", None)}
    assert RawEvent.objects.get(event="a").properties == {"span_id": "abc"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("span_id", "xyz", "is not a hex id"),
        ("span_id", "a" * 33, "is not a hex id"),
        ("parent_span_id", 12, "must be a hex string"),
        ("duration_ms", -1, "at least 0"),
        ("duration_ms", "12", "must be a number"),
        ("duration_ms", True, "must be a number"),
    ],
)
def test_malformed_span_fields_refuse_only_their_item(api_client, make_key, field, value, message):
    _, key = make_key()
    bad = {"type": "span", "event": "op", field: value}

    response = post(api_client, "/api/v1/batch", [{"event": "fine"}, bad], key)

    body = response.json()
    assert (response.status_code, body["accepted"]) == (202, 1)
    [refused] = body["rejected"]
    assert refused["index"] == 1 and message in refused["errors"][field]


def test_clock_skew_is_corrected_from_sent_at(api_client, make_key):
    _, key = make_key()
    now = datetime.now(tz=UTC)
    client_clock = now - timedelta(hours=1)  # the sender's clock is an hour slow

    post(
        api_client,
        "/api/v1/batch",
        {
            "sent_at": client_clock.isoformat(),
            "batch": [
                {"event": "a", "timestamp": (client_clock - timedelta(seconds=30)).isoformat()},
            ],
        },
        key,
    )

    stored = RawEvent.objects.get()
    assert abs((stored.timestamp - (now - timedelta(seconds=30))).total_seconds()) < 5
    assert any(note.startswith("clock skew of +3600") for note in stored.notes)


def test_future_timestamps_are_clamped_and_ancient_ones_refused(api_client, make_key):
    _, key = make_key()
    future = (datetime.now(tz=UTC) + timedelta(days=3)).isoformat()

    response = post(
        api_client,
        "/api/v1/batch",
        [
            {"event": "future", "timestamp": future},
            {"event": "ancient", "timestamp": 0},
        ],
        key,
    )

    body = response.json()
    assert body["accepted"] == 1
    assert "before 2000-01-01" in body["rejected"][0]["errors"]["timestamp"]
    stored = RawEvent.objects.get()
    assert stored.timestamp <= stored.received_at
    assert any("clamped" in note for note in stored.notes)


def test_openapi_schema_and_docs_are_served(admin_client):
    client = admin_client
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/batch" in paths and "/api/v1/events" in paths
    assert "examples" in json.dumps(paths["/api/v1/batch"])
    assert docs.status_code == 200
    # The headers that come with refusals are named where clients read when to try again.
    batch = paths["/api/v1/batch"]["post"]["responses"]
    assert set(batch["429"]["headers"]) == set(batch["503"]["headers"]) == {"Retry-After"}
    assert set(batch["401"]["headers"]) == {"WWW-Authenticate"}
    trace = paths["/api/v1/traces/{correlation_id}"]["get"]["responses"]
    assert set(trace["503"]["headers"]) == {"Retry-After"}


@pytest.mark.parametrize(
    "timestamp", [10**400, "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:00-05:00", -(10**30)]
)
def test_out_of_range_timestamps_are_refused_per_item_not_a_500(api_client, make_key, timestamp):
    _, key = make_key()

    response = post(
        api_client, "/api/v1/batch", [{"event": "bad", "timestamp": timestamp}, {"event": "good"}], key
    )

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert "timestamp" in body["rejected"][0]["errors"]


def test_a_sent_at_far_off_is_not_applied_and_out_of_range_sent_at_is_a_400(api_client, make_key):
    _, key = make_key()
    stamp = "2024-01-01T00:00:00Z"

    post(
        api_client,
        "/api/v1/batch",
        {"sent_at": "2036-01-01T00:00:00Z", "batch": [{"event": "a", "timestamp": stamp}]},
        key,
    )
    broken = post(api_client, "/api/v1/batch", {"sent_at": 10**400, "batch": [{"event": "a"}]}, key)

    stored = RawEvent.objects.get()
    assert stored.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert any("not corrected" in note for note in stored.notes)
    assert broken.status_code == 400


def test_a_failure_to_record_key_use_does_not_turn_a_stored_batch_into_a_503(
    api_client, make_key, monkeypatch
):
    from django.db import OperationalError

    _, key = make_key()

    def failing_touch(**kwargs):  # failure injection: the database drops right after the commit
        raise OperationalError("connection lost")

    monkeypatch.setattr("apps.ingest.api.api_key_touch", failing_touch)

    response = post(api_client, "/api/v1/batch", [{"event": "a"}], key)

    assert response.status_code == 202
    assert RawEvent.objects.count() == 1


def test_a_batch_the_fast_decoder_refuses_is_stored_as_the_fast_path_stores_it(api_client, make_key):
    _, fast_key = make_key(service="fast")
    _, strict_key = make_key(service="strict")
    items = [
        {"event": "a", "userId": 7, "ts": 1764151200, "properties": {"n": 10**25, "f": 1e16, "t": "é\u2028"}},
        {"message": "x\u0000y", "level": "WARN", "extra": [1, {"k": None}], "timestamp": 1764151200.5},
        {"event": "b", "time": "1764151200", "timestamp": "2026-11-26T10:00:00+05:00"},
    ]
    fast_body = json.dumps(items)
    # One more item with a lone surrogate: msgspec refuses the whole body, the strict parser reads it.
    strict_body = fast_body[:-1] + ', {"event": "bad", "message": "\\udfff"}]'

    fast = post(api_client, "/api/v1/batch", None, fast_key, raw=fast_body)
    strict = post(api_client, "/api/v1/batch", None, strict_key, raw=strict_body)

    assert fast.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert strict.json()["accepted"] == 3
    assert [item["index"] for item in strict.json()["rejected"]] == [3]
    fields = ["event", "type", "level", "message", "user_id", "timestamp", "properties", "notes"]
    stored = {
        service: list(RawEvent.objects.filter(service=service).order_by("pk").values_list(*fields))
        for service in ("fast", "strict")
    }
    assert stored["fast"] == stored["strict"]


def test_an_accepted_answer_is_what_drf_would_render(api_client, make_key):
    from rest_framework.renderers import JSONRenderer

    _, key = make_key()

    response = post(
        api_client, "/api/v1/batch", [{"event": "ok"}, {"event": "x", "timestamp": "é\u2028 not a time"}], key
    )

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    assert response.content == JSONRenderer().render(response.json())
    assert b"\\u2028" in response.content  # escaped, as JSONRenderer does for JavaScript's sake


def test_an_accepted_answer_asked_for_as_html_is_the_browsable_api(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", [{"event": "ok"}], key, headers={"HTTP_ACCEPT": "text/html"})

    assert response.status_code == 202
    assert response["Content-Type"].startswith("text/html")
    assert RawEvent.objects.count() == 1


def test_a_body_without_content_length_is_no_body_unless_the_server_terminates_it(api_client, make_key):
    _, key = make_key()

    # Django's test client always sends a Content-Length; without one and without a server that ends the
    # input itself (gunicorn does, see test_http.py), there is no body: as DRF reads it.
    response = api_client.generic(
        "POST", "/api/v1/batch", b"", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert response.status_code == 400
    assert response.json()["detail"] == 'Send {"batch": [...], "sent_at": ...} or a JSON array.'


def test_a_key_revoked_elsewhere_stops_within_the_cache_lifetime(api_client, make_key, settings):
    settings.INGEST_KEY_CACHE_SECONDS = 1
    api_key, key = make_key()
    assert post(api_client, "/api/v1/batch", [{"event": "x"}], key).status_code == 202

    # As another process revokes it: the row changes and nobody tells this process's cached key.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=datetime.now(UTC))
    assert post(api_client, "/api/v1/batch", [{"event": "x"}], key).status_code == 202  # cached a moment ago
    wait_for(
        lambda: post(api_client, "/api/v1/batch", [{"event": "x"}], key).status_code == 403,
        timeout=5,
        message="the cached key to end",
    )
    response = post(api_client, "/api/v1/batch", [{"event": "x"}], key)
    assert response.status_code == 403 and "revoked" in response.json()["detail"]


def test_a_cached_key_past_its_rotation_grace_is_refused_at_once(api_client, make_key):
    api_key, key = make_key()
    api_key.expires_at = datetime.now(UTC) + timedelta(seconds=1)
    api_key.save(update_fields=["expires_at"])
    assert post(api_client, "/api/v1/batch", [{"event": "x"}], key).status_code == 202

    wait_for(
        lambda: post(api_client, "/api/v1/batch", [{"event": "x"}], key).status_code == 403,
        timeout=5,
        message="the grace to end",
    )
    response = post(api_client, "/api/v1/batch", [{"event": "x"}], key)
    assert "rotated" in response.json()["detail"]


def test_seconds_far_in_the_future_are_refused_saying_they_were_read_as_milliseconds(api_client, make_key):
    _, key = make_key()

    response = post(api_client, "/api/v1/batch", [{"event": "far", "timestamp": 2e11}], key)

    error = response.json()["rejected"][0]["errors"]["timestamp"]
    assert "before 2000-01-01 when read as epoch milliseconds" in error
