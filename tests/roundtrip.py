"""Round trips through the real services: send through the endpoints, run the real pipeline, read back."""

import json
from typing import Any

from django.db import connection

from apps.ingest.models import RawEvent
from apps.pipeline import services
from apps.traces.search.elasticsearch import alias_name, es_client


def send_batch(api_client: Any, key: str, events: list[dict[str, Any]] | str) -> dict[str, Any]:
    """POST a batch to /api/v1/batch (events, or the body as JSON text) and return the 202's body."""
    body = events if isinstance(events, str) else json.dumps({"batch": events})
    response = api_client.generic(
        "POST", "/api/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 202, response.content
    return response.json()


def run_pipeline() -> services.ProcessOutcome:
    """Aggregate and index every stored event, as a worker's chunk does, and make the index searchable."""
    outcome = services.process_chunk(event_ids=list(RawEvent.objects.values_list("pk", flat=True)))
    assert not outcome.index_unavailable, outcome
    es_client().indices.refresh(index=alias_name())
    return outcome


def search_documents(correlation_id: str) -> list[dict[str, Any]]:
    """Return the Elasticsearch hits (index, id and source) of a correlation ID, in stored order."""
    answer = es_client().search(
        index=alias_name(), query={"term": {"correlation_id": correlation_id}}, sort=["seq"], size=2000
    )
    return answer["hits"]["hits"]


def raw_properties_text(event_id: str) -> str:
    """Return a stored event's properties as PostgreSQL writes them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT properties::text FROM ingest_rawevent WHERE event_id = %s", [event_id])
        return cursor.fetchone()[0]
