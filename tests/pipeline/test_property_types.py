"""Properties whose types differ from one event to the next, as a real fleet sends them, reach every place
support reads them: stored, indexed (nothing refused by the search mapping), in the trail as sent."""

import json
import uuid

import pytest

from apps.ingest.models import RawEvent
from apps.traces.search.elasticsearch import EventDocument, alias_name, es_client
from tests.roundtrip import run_pipeline, search_documents, send_batch

pytestmark = pytest.mark.django_db(transaction=True)

# Each event's properties; `x` changes type every time, and the keys are the ones an object mapping chokes on.
PROPERTIES = [
    {"x": 1, "flag": True, "when": "2026-11-20"},
    {"x": "one", "flag": 2, "when": 1795132800},
    {"x": {"y": 1}, "flag": "yes", "when": {"day": 20}},
    {"x": [1, "a", True, None, {"z": [2.5]}], "flag": None, "when": [2026, 11, 20]},
    {"x": 1.5, "x.y": "dotted", "a.b": 1, "a": {"b": {"c": 2}}},
    {
        "_id": "not-the-document-id",
        "_source": {"s": 1},
        "_index": "other",
        "$set": {"plan": "pro"},
        "": "empty",
    },
    {
        "k" * 5000: "long key",
        "deep": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": {"l8": {"l9": {"l10": 1}}}}}}}}},
    },
    {f"key_{i}": i for i in range(1200)},
]


def test_conflicting_property_types_are_all_stored_indexed_and_shown_as_sent(
    api_client, make_key, clean_search_index, support_client
):
    _, key = make_key()
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "event": "fleet_report",
            "correlation_id": "fleet",
            "timestamp": f"2026-11-20T09:00:{i:02d}Z",
            "properties": properties,
        }
        for i, properties in enumerate(PROPERTIES)
    ]
    assert send_batch(api_client, key, events) == {"accepted": len(events), "duplicates": 0, "rejected": []}

    outcome = run_pipeline()

    assert outcome.indexed.done == len(events) and outcome.indexed.dead_lettered == 0, outcome
    assert not RawEvent.objects.filter(index_rejected_at__isnull=False).exists()
    assert not RawEvent.objects.exclude(last_error="").exists()
    documents = search_documents("fleet")
    assert [doc["_source"]["properties"] for doc in documents] == PROPERTIES
    # The metadata-looking keys stayed properties: the documents' own ids are the events'.
    assert {doc["_id"] for doc in documents} == {f"search-api:{ev['event_id']}" for ev in events}
    # The mapping did not grow, whatever the keys.
    index = f"{alias_name()}-2026.11.20"
    mapping = es_client().indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["properties"]["type"] == "flattened"
    assert set(mapping["properties"]) == set(EventDocument._doc_type.mapping.to_dict()["properties"])

    trail = support_client.get("/api/v1/traces/fleet").json()["events"]
    assert [event["properties"] for event in trail] == PROPERTIES
    download = support_client.get("/api/v1/traces/fleet?download=1")
    assert [event["properties"] for event in json.loads(download.content)["events"]] == PROPERTIES


def test_a_property_value_of_each_type_is_found_by_its_text(api_client, make_key, clean_search_index):
    # What a purge relies on: a user ID in a property is found whatever JSON type it came as.
    _, key = make_key()
    values = [1234, "1234", [1234]]
    events = [
        {
            "event": "e",
            "correlation_id": f"c{i}",
            "timestamp": "2026-11-20T09:00:00Z",
            "properties": {"owner": v},
        }
        for i, v in enumerate(values)
    ]
    send_batch(api_client, key, events)
    run_pipeline()

    hits = es_client().search(index=alias_name(), query={"term": {"properties.owner": "1234"}})["hits"]
    assert hits["total"]["value"] == len(values)
