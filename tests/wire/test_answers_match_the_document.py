"""The PostHog, Segment and OTLP endpoints' error answers as their OpenAPI document describes them, which is
what a client generated from it parses: every field it calls required is there, every field sent is named,
and OTLP's google.rpc.Status is one named schema (one type), not a look-alike per status code."""

import pytest

from tests.ingest.openapi_validation import response_schema, schema_errors, served_document
from tests.wire.conftest import basic, post
from tests.wire.test_api_otlp import bearer, send

pytestmark = pytest.mark.django_db

STATUS = {"$ref": "#/components/schemas/GoogleRpcStatus"}


@pytest.fixture
def document(client, make_person):
    client.force_login(make_person("admin"))
    served = served_document(client)
    client.logout()
    return served


def strict(schema: dict) -> dict:
    """The schema with no field beyond those it names (what a strict generated client reads)."""
    return {**schema, "additionalProperties": False} if schema.get("type") == "object" else schema


def test_one_refused_segment_message_is_answered_as_the_document_says(client, make_key, document):
    _, key = make_key()

    response = post(client, "/segment/v1/track", {"type": "track", "userId": "u"}, headers=basic(key))

    assert response.status_code == 400
    schema = document["components"]["schemas"]["SegmentError"]
    assert response_schema(document, "/segment/v1/track", "post", 400) == {
        "$ref": "#/components/schemas/SegmentError"
    }
    assert schema_errors(document, strict(schema), response.json()) == []


def test_one_refused_posthog_event_is_answered_as_the_document_says(client, make_key, document):
    _, key = make_key()

    response = post(client, "/posthog/capture/", {"api_key": key, "distinct_id": "u1"})

    assert response.status_code == 400
    schema = response_schema(document, "/posthog/capture/", "post", 400)
    resolved = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert schema_errors(document, strict(resolved), response.json()) == []
    assert "errors" in resolved["properties"]


@pytest.mark.parametrize("path", ["/otlp/v1/logs", "/otlp/v1/traces"])
def test_every_otlp_failure_is_the_one_named_status_schema(client, make_key, document, path):
    _, key = make_key()
    refused = send(client, path, b"{", key, content_type="application/json", headers=bearer(key))

    failures = {
        code: answer["content"]["application/json"]["schema"]
        for code, answer in document["paths"][path]["post"]["responses"].items()
        if code != "200"
    }
    assert failures and all(schema == STATUS for schema in failures.values()), failures
    assert refused.status_code == 400
    component = document["components"]["schemas"]["GoogleRpcStatus"]
    assert schema_errors(document, strict(component), refused.json()) == []
