"""POST /segment/v1/batch and the one-message paths as a Segment or RudderStack sender sees them."""

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_revoke
from apps.wire.ids import event_id_for
from tests.wire.conftest import basic, post, post_chunked

pytestmark = pytest.mark.django_db


def message(kind="track", **fields):
    base = {
        "type": kind,
        "userId": "user-1",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-11-26T10:15:00.000+00:00",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "integrations": {},
    }
    if kind == "track":
        base.update(event="Search Made", properties={"n_results": 12})
    return {**base, **fields}


def test_a_batch_with_basic_auth_is_stored_and_answered_as_segment_does(client, make_key):
    _, key = make_key()
    sent = message()

    response = post(client, "/segment/v1/batch", {"batch": [sent], "writeKey": key}, headers=basic(key))

    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    stored = RawEvent.objects.get()
    assert (stored.service, stored.stage, stored.event, stored.user_id) == (
        "search-api",
        "prod",
        "Search Made",
        "user-1",
    )
    assert str(stored.event_id) == sent["messageId"]
    assert stored.timestamp == datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
    assert stored.properties == {"n_results": 12, "context": sent["context"], "integrations": {}}
    assert key not in json.dumps(stored.properties)


def test_the_write_key_in_the_body_alone_works_and_is_never_stored(client, make_key):
    _, key = make_key()

    response = post(client, "/segment/v1/batch/", {"batch": [message()], "writeKey": key})
    single = post(client, "/segment/v1/track", {**message(), "writeKey": key})

    assert (response.status_code, single.status_code) == (200, 200)
    assert key not in json.dumps(list(RawEvent.objects.values("properties", "notes")))


@pytest.mark.parametrize(
    ("kind", "fields", "properties"),
    [
        ("identify", {"traits": {"plan": "pro"}}, {"traits": {"plan": "pro"}}),
        (
            "page",
            {"name": "Pricing", "properties": {"path": "/pricing"}},
            {"path": "/pricing", "name": "Pricing"},
        ),
        ("screen", {"name": "Home", "category": "app"}, {"name": "Home", "category": "app"}),
        ("group", {"groupId": "acme", "traits": {"size": 12}}, {"groupId": "acme", "traits": {"size": 12}}),
        ("alias", {"previousId": "anon-9"}, {"previousId": "anon-9"}),
    ],
)
def test_each_message_type_is_an_event_named_after_it_with_everything_kept(
    client, make_key, kind, fields, properties
):
    _, key = make_key()
    sent = message(kind, **fields)

    batch = post(client, "/segment/v1/batch", {"batch": [sent]}, headers=basic(key))
    alone = post(client, f"/segment/v1/{kind}", message(kind, **fields), headers=basic(key))

    assert (batch.status_code, alone.status_code) == (200, 200), (batch.content, alone.content)
    stored = RawEvent.objects.get(event_id=sent["messageId"])
    assert stored.event == kind
    assert stored.properties == {**properties, "context": sent["context"], "integrations": {}}
    assert RawEvent.objects.filter(event=kind).count() == 2


def test_the_path_names_the_type_of_one_message(client, make_key):
    _, key = make_key()

    response = post(client, "/segment/v1/identify", message("track", traits={"a": 1}), headers=basic(key))

    assert response.status_code == 200
    assert RawEvent.objects.get().event == "identify"


def test_anonymous_id_is_the_user_when_there_is_no_user_id(client, make_key):
    _, key = make_key()
    batch = [message(userId=None, anonymousId="anon-1"), message(userId="u2", anonymousId="anon-2")]

    post(client, "/segment/v1/batch", {"batch": batch}, headers=basic(key))

    stored = {e.user_id: e.properties.get("anonymousId") for e in RawEvent.objects.all()}
    assert stored == {"anon-1": None, "u2": "anon-2"}


def test_a_batch_with_one_bad_message_stores_the_rest_and_names_the_bad_one(client, make_key):
    _, key = make_key()
    batch = [
        message(),
        message("oops"),
        message(timestamp="1990-01-01T00:00:00Z"),
        message(userId=["x"]),
        "not an object",
    ]

    response = post(client, "/segment/v1/batch", {"batch": batch}, headers=basic(key))

    body = response.json()
    assert response.status_code == 200
    assert (body["success"], body["accepted"]) == (True, 1)
    rejected = {item["index"]: item["errors"] for item in body["rejected"]}
    assert set(rejected) == {1, 2, 3, 4}
    assert "must be one of track" in rejected[1]["type"]
    assert "before 2000-01-01" in rejected[2]["timestamp"]
    assert set(rejected[3]) == {"userId"}
    assert rejected[4] == {"item": "must be a JSON object, got a string"}
    assert RawEvent.objects.count() == 1


def test_one_refused_message_alone_is_a_400_in_segments_error_shape(client, make_key):
    _, key = make_key()

    response = post(client, "/segment/v1/track", message(event=None), headers=basic(key))

    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["code"]) == (False, "invalid_message")
    assert "event" in body["errors"] and body["message"].startswith("The message was refused")


def test_a_resent_batch_is_stored_once_free_text_message_ids_included(client, make_key):
    _, key = make_key()
    body = {"batch": [message(), message(messageId="ajs-next-1696000000000-abc")]}

    first = post(client, "/segment/v1/batch", body, headers=basic(key))
    second = post(client, "/segment/v1/batch", body, headers=basic(key))

    assert first.json()["accepted"] == 2
    assert second.json() == {"success": True, "accepted": 0, "duplicates": 2, "rejected": []}
    derived = RawEvent.objects.get(
        event_id=event_id_for("ajs-next-1696000000000-abc", service="search-api")[0]
    )
    assert derived.properties["original_event_id"] == "ajs-next-1696000000000-abc"


def test_correlation_id_from_the_header_properties_or_context(client, make_key):
    _, key = make_key()
    batch = [
        message(event="from-header"),
        message(event="from-properties", properties={"correlation_id": "req-p"}),
        message(event="from-context", context={"correlationId": "req-c"}),
    ]

    post(
        client,
        "/segment/v1/batch",
        {"batch": batch},
        headers={**basic(key), "HTTP_X_CORRELATION_ID": "req-h"},
    )

    assert dict(RawEvent.objects.values_list("event", "correlation_id")) == {
        "from-header": "req-h",
        "from-properties": "req-p",
        "from-context": "req-c",
    }


def test_clock_skew_is_corrected_from_sent_at(client, make_key):
    _, key = make_key()
    client_clock = timezone.now() - timedelta(hours=1)
    sent = message(timestamp=(client_clock - timedelta(seconds=30)).isoformat())

    post(
        client, "/segment/v1/batch", {"batch": [sent], "sentAt": client_clock.isoformat()}, headers=basic(key)
    )

    stored = RawEvent.objects.get()
    assert abs((stored.timestamp - (timezone.now() - timedelta(seconds=30))).total_seconds()) < 5


def test_a_sent_at_that_is_not_a_time_is_400(client, make_key):
    _, key = make_key()

    response = post(client, "/segment/v1/batch", {"batch": [message()], "sentAt": "soon"}, headers=basic(key))

    assert response.status_code == 400
    assert response.json()["message"].startswith("sentAt: ")


def test_gzip_and_chunked_bodies(client, make_key):
    _, key = make_key()
    zipped = gzip.compress(json.dumps({"batch": [message(event="zipped")]}).encode())
    plain = json.dumps({"batch": [message(event="chunked")], "writeKey": key}).encode()

    by_header = post(
        client, "/segment/v1/batch", raw=zipped, headers={**basic(key), "HTTP_CONTENT_ENCODING": "gzip"}
    )
    chunked = post_chunked(client, "/segment/v1/batch", plain)

    assert (by_header.status_code, chunked.status_code) == (200, 200), chunked.content
    assert set(RawEvent.objects.values_list("event", flat=True)) == {"zipped", "chunked"}


def test_a_body_over_the_wire_limit_is_413_in_segments_error_shape(client, make_key, settings):
    _, key = make_key()
    batch = [message(properties={"blob": "x" * 9000}) for _ in range(950)]
    assert len(json.dumps({"batch": batch})) > settings.WIRE_MAX_BODY_BYTES

    response = post(client, "/segment/v1/batch", {"batch": batch}, headers=basic(key))

    assert response.status_code == 413
    assert response.json()["success"] is False and response.json()["code"] == "payload_too_large"
    assert RawEvent.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"batch": ', "", '{"batch": "x"}', '{"batch": []}', "[]", '{"events": []}'])
def test_malformed_bodies_are_400_with_code_and_message(client, make_key, raw):
    _, key = make_key()

    response = post(client, "/segment/v1/batch", raw=raw, headers=basic(key))

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["code"] and body["message"]


def test_no_key_is_401_saying_where_the_key_goes(client, db):
    response = post(client, "/segment/v1/batch", {"batch": [message()]})

    assert response.status_code == 401
    assert "Basic-auth" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "headers",
    [
        basic("swk_deadbeef_wrong"),
        {"HTTP_AUTHORIZATION": "Basic not-base64!"},
        {"HTTP_AUTHORIZATION": "Bearer something"},
    ],
)
def test_a_wrong_key_or_malformed_credentials_are_401_and_store_nothing(client, make_key, headers):
    make_key()

    response = post(client, "/segment/v1/batch", {"batch": [message()]}, headers=headers)

    assert response.status_code == 401
    assert response.json()["success"] is False
    assert RawEvent.objects.count() == 0


def test_the_basic_auth_key_wins_over_a_different_write_key_in_the_body(client, make_key):
    _, key = make_key()

    response = post(
        client, "/segment/v1/batch", {"batch": [message()], "writeKey": "swk_other_key"}, headers=basic(key)
    )

    assert response.status_code == 200
    assert "swk_other_key" not in json.dumps(RawEvent.objects.get().properties)


def test_a_revoked_key_is_403_as_on_api_v1(client, make_key):
    api_key, key = make_key()
    service_key_revoke(api_key=api_key, actor=Actor.command("tests"))

    response = post(client, "/segment/v1/batch", {"batch": [message()]}, headers=basic(key))

    assert response.status_code == 403
    assert "revoked" in response.json()["message"]
    assert RawEvent.objects.count() == 0


def test_a_throttled_key_gets_429_with_retry_after(client, make_key, settings):
    settings.INGEST_RATE_LIMIT = "1/min"
    _, key = make_key()

    answers = [
        post(client, "/segment/v1/batch", {"batch": [message()]}, headers=basic(key)) for _ in range(2)
    ]

    assert [a.status_code for a in answers] == [200, 429]
    assert int(answers[1]["Retry-After"]) >= 1
    assert answers[1].json()["code"] == "throttled"


def test_the_endpoints_are_in_the_openapi_schema_with_their_tags(admin_client):
    paths = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    tags = {path: [op["tags"] for op in ops.values()] for path, ops in paths.items()}
    assert {p for p in tags if p.startswith("/posthog/")} == {
        "/posthog/batch/",
        "/posthog/capture/",
        "/posthog/e/",
        "/posthog/i/v0/e/",
    }
    assert {p for p in tags if p.startswith("/segment/")} == {
        f"/segment/v1/{kind}" for kind in ("batch", "track", "identify", "page", "screen", "group", "alias")
    }
    assert all(tags[p] == [["posthog"]] for p in tags if p.startswith("/posthog/"))
    assert all(tags[p] == [["segment"]] for p in tags if p.startswith("/segment/"))
