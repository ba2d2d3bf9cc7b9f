"""A field moved into properties never overwrites a property the sender sent: when its name and its
`_top.`/`_resource.`/`_scope.` name are both taken, it takes one more prefix, and every value is there."""

import json
import uuid

import pytest

from apps.ingest.models import RawEvent
from tests.wire.conftest import basic, post
from tests.wire.otlp_messages import log_record, logs_request, resource_attributes

pytestmark = pytest.mark.django_db


def stored_properties() -> dict:
    [properties] = RawEvent.objects.values_list("properties", flat=True)
    return properties


def test_a_top_level_field_beside_a_property_and_its_top_name(api_client, make_key):
    _, key = make_key()
    item = {"event": "e", "x": "top", "properties": {"x": "prop", "_top.x": "the sender's own"}}
    response = api_client.post(
        "/api/v1/batch",
        json.dumps([item]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 202, response.content
    assert stored_properties() == {"x": "prop", "_top.x": "the sender's own", "_top._top.x": "top"}
    [notes] = RawEvent.objects.values_list("notes", flat=True)
    assert "x moved to properties as _top._top.x: properties already had x" in notes


def test_span_fields_of_a_metric_beside_their_top_names(api_client, make_key):
    _, key = make_key()
    item = {"event": "e", "duration_ms": 5, "properties": {"duration_ms": 1, "_top.duration_ms": 2}}
    response = api_client.post(
        "/api/v1/events",
        json.dumps(item),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 202, response.content
    assert stored_properties() == {"duration_ms": 1, "_top.duration_ms": 2, "_top._top.duration_ms": 5}


def test_a_segment_field_beside_a_property_and_its_top_name(client, make_key):
    _, key = make_key()
    message = {
        "type": "page",
        "userId": "u",
        "messageId": str(uuid.uuid4()),
        "name": "Home",
        "properties": {"name": "prop", "_top.name": "the sender's own"},
    }
    response = post(client, "/segment/v1/batch", {"batch": [message]}, headers=basic(key))

    assert response.status_code == 200, response.content
    properties = stored_properties()
    assert (properties["name"], properties["_top.name"], properties["_top._top.name"]) == (
        "prop",
        "the sender's own",
        "Home",
    )


def test_a_posthog_field_beside_a_property_and_its_top_name(client, make_key):
    _, key = make_key()
    event = {
        "event": "$identify",
        "distinct_id": "u",
        "uuid": str(uuid.uuid4()),
        "$set": {"plan": "pro"},
        "properties": {"$set": "prop", "_top.$set": "the sender's own"},
    }
    response = post(client, "/posthog/batch/", {"api_key": key, "batch": [event]})

    assert response.status_code == 200, response.content
    properties = stored_properties()
    assert (properties["$set"], properties["_top.$set"], properties["_top._top.$set"]) == (
        "prop",
        "the sender's own",
        {"plan": "pro"},
    )


def test_an_otlp_resource_attribute_beside_a_record_attribute_and_its_resource_name(client, make_key):
    _, key = make_key()
    request = logs_request(
        log_record(attributes={"region": "record", "_resource.region": "the sender's own"}),
        resource={**resource_attributes(), "region": "resource"},
    )
    response = client.generic(
        "POST",
        "/otlp/v1/logs",
        request.SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 200, response.content
    properties = stored_properties()
    assert (
        properties["region"],
        properties["_resource.region"],
        properties["_resource._resource.region"],
    ) == (
        "record",
        "the sender's own",
        "resource",
    )
