"""POST /posthog/batch/, /capture/, /e/ and /i/v0/e/ as a posthog sender sees them (Django test client)."""

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.models import ApiKey, RawEvent
from apps.ingest.services import service_key_revoke
from apps.wire.ids import event_id_for
from tests.wire.conftest import post, post_chunked

pytestmark = pytest.mark.django_db

PATHS = ["/posthog/batch/", "/posthog/capture/", "/posthog/e/", "/posthog/i/v0/e/", "/posthog/i/v0/e"]


def event(name="search_made", **fields):
    return {
        "event": name,
        "distinct_id": "user-1",
        "uuid": str(uuid.uuid4()),
        "timestamp": "2026-11-26T10:15:00+00:00",
        "properties": {"n_results": 12, "$lib": "posthog-python"},
        **fields,
    }


@pytest.mark.parametrize("path", PATHS)
def test_a_batch_is_stored_and_answered_as_posthog_sdks_expect(client, make_key, path):
    _, key = make_key()
    sent = event(properties={"n_results": 12, "$lib": "posthog-python", "$set": {"plan": "pro"}})

    response = post(client, path, {"api_key": key, "batch": [sent], "historical_migration": False})

    assert response.status_code == 200, response.content
    assert response.json() == {"status": 1, "accepted": 1, "duplicates": 0, "rejected": []}
    stored = RawEvent.objects.get()
    assert (stored.service, stored.stage, stored.type, stored.event) == (
        "search-api",
        "prod",
        "metric",
        "search_made",
    )
    assert str(stored.event_id) == sent["uuid"]
    assert stored.user_id == "user-1"
    assert stored.timestamp == datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
    assert stored.properties == {"n_results": 12, "$lib": "posthog-python", "$set": {"plan": "pro"}}


def test_one_event_with_its_token_and_a_bare_array_are_read_too(client, make_key):
    _, key = make_key()

    single = post(client, "/posthog/capture/", {**event("one"), "token": key})
    bare = post(client, "/posthog/batch/", [{**event("a"), "api_key": key}, {**event("b"), "api_key": key}])

    assert single.json()["accepted"] == 1 and bare.json()["accepted"] == 2
    assert set(RawEvent.objects.values_list("event", flat=True)) == {"one", "a", "b"}


def test_the_key_in_each_events_properties_posthog_js_style_is_never_stored(client, make_key):
    _, key = make_key()
    sent = event(properties={"token": key, "$current_url": "https://example.test/"})

    response = post(client, "/posthog/e/", [sent])

    assert response.status_code == 200, response.content
    stored = RawEvent.objects.get()
    assert stored.properties == {"$current_url": "https://example.test/"}
    assert key not in json.dumps(list(RawEvent.objects.values("properties", "notes")))


def test_set_and_identify_events_are_stored_as_events_with_their_top_level_fields(client, make_key):
    _, key = make_key()
    batch = [
        {"event": "$set", "distinct_id": "u1", "$set": {"plan": "pro"}, "properties": {}},
        {"event": "$identify", "distinct_id": "u1", "$set_once": {"first": "x"}, "properties": {"$set": 1}},
    ]

    post(client, "/posthog/batch/", {"api_key": key, "batch": batch})

    stored = {e.event: e.properties for e in RawEvent.objects.all()}
    assert stored == {
        "$set": {"$set": {"plan": "pro"}},
        "$identify": {"$set": 1, "$set_once": {"first": "x"}},
    }


def test_a_batch_with_one_bad_event_stores_the_rest_and_names_the_bad_one_in_posthog_terms(client, make_key):
    _, key = make_key()
    batch = [event("good"), event("ancient", timestamp="1990-01-01T00:00:00Z"), event(distinct_id={"a": 1})]

    response = post(client, "/posthog/batch/", {"api_key": key, "batch": batch})

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["accepted"]) == (1, 1)
    rejected = {item["index"]: item["errors"] for item in body["rejected"]}
    assert set(rejected) == {1, 2}
    assert "before 2000-01-01" in rejected[1]["timestamp"]
    assert set(rejected[2]) == {"distinct_id"}
    assert list(RawEvent.objects.values_list("event", flat=True)) == ["good"]


def test_one_refused_event_alone_is_a_400_with_its_errors(client, make_key):
    _, key = make_key()

    response = post(client, "/posthog/capture/", {"api_key": key, "distinct_id": "u1"})

    assert response.status_code == 400
    assert "event" in response.json()["errors"]
    assert response.json()["detail"].startswith("The event was refused: event:")
    assert RawEvent.objects.count() == 0


def test_a_resent_batch_is_stored_once(client, make_key):
    _, key = make_key()
    body = {"api_key": key, "batch": [event(), event()]}

    first = post(client, "/posthog/batch/", body)
    second = post(client, "/posthog/batch/", body)

    assert first.json()["accepted"] == 2
    assert second.json() == {"status": 1, "accepted": 0, "duplicates": 2, "rejected": []}
    assert RawEvent.objects.count() == 2


def test_a_uuid_that_is_not_one_becomes_a_stable_uuid_and_is_kept(client, make_key):
    _, key = make_key()
    body = {"api_key": key, "batch": [event(uuid="ph-event-77")]}

    first = post(client, "/posthog/batch/", body)
    again = post(client, "/posthog/batch/", body)

    assert (first.json()["accepted"], again.json()["duplicates"]) == (1, 1)
    stored = RawEvent.objects.get()
    assert str(stored.event_id) == event_id_for("ph-event-77", service="search-api")[0]
    assert stored.properties["original_event_id"] == "ph-event-77"


def test_correlation_id_from_the_header_or_a_property(client, make_key):
    _, key = make_key()
    batch = [event("from-header"), event("from-property", properties={"correlation_id": "req-own"})]

    post(
        client,
        "/posthog/batch/",
        {"api_key": key, "batch": batch},
        headers={"HTTP_X_CORRELATION_ID": "req-1"},
    )

    assert dict(RawEvent.objects.values_list("event", "correlation_id")) == {
        "from-header": "req-1",
        "from-property": "req-own",
    }


def test_clock_skew_is_corrected_from_sent_at(client, make_key):
    _, key = make_key()
    client_clock = timezone.now() - timedelta(hours=1)

    post(
        client,
        "/posthog/batch/",
        {
            "api_key": key,
            "sent_at": client_clock.isoformat(),
            "batch": [event(timestamp=(client_clock - timedelta(seconds=30)).isoformat())],
        },
    )

    stored = RawEvent.objects.get()
    assert abs((stored.timestamp - (timezone.now() - timedelta(seconds=30))).total_seconds()) < 5
    assert any(note.startswith("clock skew of +3600") for note in stored.notes)


def test_gzip_by_content_encoding_by_query_string_and_by_magic_bytes(client, make_key):
    _, key = make_key()

    def zipped(name):
        return gzip.compress(json.dumps({"api_key": key, "batch": [event(name)]}).encode())

    by_header = post(client, "/posthog/batch/", raw=zipped("a"), headers={"HTTP_CONTENT_ENCODING": "gzip"})
    by_query = post(
        client, "/posthog/e/?compression=gzip-js&ver=1.0", raw=zipped("b"), content_type="text/plain"
    )
    by_magic = post(client, "/posthog/batch/", raw=zipped("c"))

    assert [r.status_code for r in (by_header, by_query, by_magic)] == [200, 200, 200]
    assert RawEvent.objects.count() == 3


def posthog_js_base64(body) -> str:
    """Return a body as posthog-js encodes it with compression=base64 (packages/browser/src/request.ts:
    base64 of the UTF-8 JSON, then `'data=' + encodeURIComponent(...)`, sent as a form)."""
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return "data=" + quote(encoded, safe="")


def test_a_posthog_js_base64_form_body_is_read(client, make_key):
    _, key = make_key()
    sent = event("zoë ✓", properties={"token": key, "$current_url": "https://example.test/?q=a+b"})

    response = post(
        client,
        "/posthog/e/?compression=base64&ver=1.300.0",
        raw=posthog_js_base64([sent]),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200, response.content
    stored = RawEvent.objects.get()
    assert (stored.event, stored.properties) == ("zoë ✓", {"$current_url": "https://example.test/?q=a+b"})


def test_a_form_body_with_json_in_data_is_read_as_posthog_capture_reads_it(client, make_key):
    _, key = make_key()
    form = "data=" + quote(json.dumps({**event("legacy"), "token": key}), safe="")

    response = post(client, "/posthog/e/", raw=form, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200, response.content
    assert RawEvent.objects.get().event == "legacy"


def test_a_base64_form_body_that_is_not_base64_is_400(client, make_key):
    make_key()

    response = post(
        client,
        "/posthog/e/?compression=base64",
        raw="data=%%%not-base64",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert "base64" in response.json()["detail"]


def test_posthog_js_sent_at_in_the_query_corrects_clock_skew(client, make_key):
    """posthog-js sends no sent_at in the body: its request time is `_` (epoch ms) in the query string, which
    PostHog's capture reads for the skew correction."""
    _, key = make_key()
    client_clock = timezone.now() - timedelta(hours=1)
    sent = {**event(timestamp=(client_clock - timedelta(seconds=30)).isoformat()), "token": key}

    response = post(client, f"/posthog/e/?ver=1.300.0&_={int(client_clock.timestamp() * 1000)}", [sent])

    assert response.status_code == 200, response.content
    stored = RawEvent.objects.get()
    assert abs((stored.timestamp - (timezone.now() - timedelta(seconds=30))).total_seconds()) < 5
    assert any(note.startswith("clock skew of +3600") for note in stored.notes)


@pytest.mark.parametrize("underscore", ["1700000000", "soon", ""])
def test_a_query_time_posthog_does_not_read_is_ignored_not_refused(client, make_key, underscore):
    """Seconds (older SDKs) or anything else in `_` is ignored, as PostHog's capture does."""
    _, key = make_key()

    response = post(client, f"/posthog/e/?_={underscore}", [{**event(), "token": key}])

    assert response.status_code == 200, response.content
    assert not any("clock skew" in note for note in RawEvent.objects.get().notes)


def test_an_encoding_posthog_js_may_choose_that_is_not_read_is_415(client, make_key):
    _, key = make_key()

    response = post(client, "/posthog/e/?compression=lz64", raw="N4Ig...", content_type="text/plain")

    assert response.status_code == 415
    assert "lz64" in response.json()["detail"]


def test_a_chunked_body_without_content_length_is_read_whole(client, make_key):
    _, key = make_key()
    data = json.dumps({"api_key": key, "batch": [event("chunked")]}).encode()

    response = post_chunked(
        client, "/posthog/batch/", gzip.compress(data), headers={"HTTP_CONTENT_ENCODING": "gzip"}
    )

    assert response.status_code == 200, response.content
    assert RawEvent.objects.get().event == "chunked"


def test_a_chunked_body_the_server_does_not_terminate_is_411(client, make_key):
    _, key = make_key()

    response = post_chunked(client, "/posthog/batch/", b"{}", terminated=False)

    assert response.status_code == 411


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_wire_limit_is_413(client, make_key, chunked, settings):
    _, key = make_key()
    data = json.dumps({"api_key": key, "batch": [event(message="x" * 9000) for _ in range(950)]}).encode()
    assert len(data) > settings.WIRE_MAX_BODY_BYTES

    response = (
        post_chunked(client, "/posthog/batch/", data)
        if chunked
        else post(client, "/posthog/batch/", raw=data)
    )

    assert response.status_code == 413
    assert RawEvent.objects.count() == 0


def test_a_gzip_body_inflating_past_16_mb_is_413(client, make_key, settings):
    bomb = gzip.compress(b"[" + b" " * settings.WIRE_MAX_DECOMPRESSED_BYTES + b"]")

    response = post(client, "/posthog/batch/", raw=bomb, headers={"HTTP_CONTENT_ENCODING": "gzip"})

    assert response.status_code == 413
    assert "Decompressed body" in response.json()["detail"]


def test_more_than_1000_events_is_413(client, make_key):
    _, key = make_key()

    response = post(client, "/posthog/batch/", {"api_key": key, "batch": [{"event": "e"}] * 1001})

    assert response.status_code == 413


@pytest.mark.parametrize(
    "raw", ['{"api_key": ', "", '{"batch": {"event": "x"}}', '{"batch": []}', "42", "[1, NaN]"]
)
def test_malformed_bodies_are_400(client, make_key, raw):
    make_key()

    response = post(client, "/posthog/batch/", raw=raw)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_form_body_is_415(client, make_key):
    _, key = make_key()

    response = post(
        client, "/posthog/batch/", raw=f"api_key={key}", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415


def test_no_key_is_401_saying_where_the_key_goes(client, db):
    response = post(client, "/posthog/batch/", {"batch": [event()]})

    assert response.status_code == 401
    assert "api_key" in response.json()["detail"]
    assert response["WWW-Authenticate"]


def test_a_wrong_key_is_401_and_stores_nothing(client, make_key):
    make_key()

    response = post(client, "/posthog/batch/", {"api_key": "swk_deadbeef_wrong", "batch": [event()]})

    assert response.status_code == 401
    assert RawEvent.objects.count() == 0


def test_two_different_keys_in_one_request_are_401(client, make_key):
    _, key = make_key()
    _, other = make_key(service="other")

    response = post(client, "/posthog/batch/", [{**event(), "api_key": key}, {**event(), "api_key": other}])

    assert response.status_code == 401
    assert "two different keys" in response.json()["detail"]


def test_a_revoked_or_expired_key_is_401_as_posthog_sdks_know_it(client, make_key):
    revoked, revoked_key = make_key()
    expired, expired_key = make_key(service="other")
    service_key_revoke(api_key=revoked, actor=Actor.command("tests"))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    answers = [
        post(client, "/posthog/batch/", {"api_key": k, "batch": [event()]})
        for k in (revoked_key, expired_key)
    ]

    assert [a.status_code for a in answers] == [401, 401]
    assert "revoked" in answers[0].json()["detail"] and "expired" in answers[1].json()["detail"]
    assert RawEvent.objects.count() == 0


def test_use_is_recorded_on_the_key(client, make_key):
    api_key, key = make_key()

    post(client, "/posthog/batch/", {"api_key": key, "batch": [event()]})

    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


def test_a_throttled_key_gets_429_with_retry_after(client, make_key, settings):
    settings.INGEST_RATE_LIMIT = "2/min"
    _, key = make_key()

    answers = [post(client, "/posthog/batch/", {"api_key": key, "batch": [event()]}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    assert RawEvent.objects.count() == 2


def test_a_group_identify_is_stored_without_a_user(client, make_key):
    """posthog's group_identify sends the group as `$<type>_<key>` in distinct_id: no person to count."""
    _, key = make_key()
    group = event(
        "$groupidentify",
        distinct_id="$company_acme",
        properties={"$group_type": "company", "$group_key": "acme", "$group_set": {"plan": "pro"}},
    )

    response = post(client, "/posthog/batch/", {"api_key": key, "batch": [group, event("search_made")]})

    assert response.json()["accepted"] == 2
    stored = {e.event: e for e in RawEvent.objects.all()}
    assert stored["$groupidentify"].user_id == ""
    assert stored["$groupidentify"].properties["distinct_id"] == "$company_acme"
    assert stored["$groupidentify"].properties["$group_key"] == "acme"
    assert stored["search_made"].user_id == "user-1"
