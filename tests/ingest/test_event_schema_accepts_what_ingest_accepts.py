"""The OpenAPI document's Event and Batch accept every event that POST /api/v1/events and /api/v1/batch
accept, and require the body they require: a client generated from the document, or one that validates
what it sends against it, must be able to send what the API stores."""

import json

import pytest

from apps.ingest.models import RawEvent
from tests.ingest.openapi_validation import request_schema, schema_errors, served_document

pytestmark = pytest.mark.django_db


def send(api_client, path: str, body, key: str):
    return api_client.post(
        path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


# Each stored by the API (202), so each must be valid under the document's Event.
EVENTS_THE_API_STORES = {
    "root span, empty parent_span_id": {
        "type": "span",
        "event": "GET /",
        "span_id": "ab12",
        "parent_span_id": "",
    },
    "metric, empty span_id": {"event": "search_made", "span_id": ""},
    "null span ids": {"type": "span", "event": "GET /", "span_id": None, "parent_span_id": None},
    "null timestamp (the received time)": {"event": "search_made", "timestamp": None},
    "null user_id (no user)": {"event": "search_made", "user_id": None},
    "epoch seconds as a number": {"event": "search_made", "timestamp": 1764900000.5},
    "numeric user_id": {"event": "search_made", "user_id": 1234},
}


@pytest.mark.parametrize("event", EVENTS_THE_API_STORES.values(), ids=EVENTS_THE_API_STORES.keys())
def test_the_document_accepts_each_event_the_api_stores(admin_client, api_client, make_key, event):
    _, key = make_key()
    document = served_document(admin_client)

    response = send(api_client, "/api/v1/events", event, key)

    assert response.status_code == 202, response.content
    assert schema_errors(document, request_schema(document, "/api/v1/events", "post"), event) == []
    batch = {"batch": [event]}
    assert schema_errors(document, request_schema(document, "/api/v1/batch", "post"), batch) == []


def test_the_document_refuses_a_span_id_the_api_refuses(admin_client, api_client, make_key):
    _, key = make_key()
    document = served_document(admin_client)
    event = {"type": "span", "event": "GET /", "span_id": "not-hex"}

    response = send(api_client, "/api/v1/events", event, key)

    assert response.status_code == 400
    assert schema_errors(document, request_schema(document, "/api/v1/events", "post"), event) != []


def test_a_batch_sent_at_null_is_stored_and_documented(admin_client, api_client, make_key):
    _, key = make_key()
    document = served_document(admin_client)
    batch = {"batch": [{"event": "search_made"}], "sent_at": None}

    response = send(api_client, "/api/v1/batch", batch, key)

    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1
    assert schema_errors(document, request_schema(document, "/api/v1/batch", "post"), batch) == []


def test_one_event_needs_a_body_and_the_document_says_so(admin_client, api_client, make_key):
    _, key = make_key()
    document = served_document(admin_client)

    response = api_client.post("/api/v1/events", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 400
    assert not RawEvent.objects.exists()
    assert document["paths"]["/api/v1/events"]["post"]["requestBody"].get("required") is True
