"""A user ID typed in one Unicode form finds the events stored in the other: conform stores user IDs
composed (NFC), but rows stored before it did keep the form their service sent (decomposed, as macOS file
names are), and a person may paste either form."""

import unicodedata
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest

from apps.ingest.models import RawEvent
from apps.pipeline.services import index_chunk

COMPOSED = unicodedata.normalize("NFC", "José Müller")
DECOMPOSED = unicodedata.normalize("NFD", "José Müller")


@pytest.fixture
def both_forms_stored(trace_backend, store_events):
    """One request stored with the composed ID, one as a row stored before normalization (decomposed)."""
    now = datetime.now(UTC)
    events = [
        {
            "event": "search_made",
            "user_id": COMPOSED,
            "correlation_id": cid,
            "timestamp": now - timedelta(minutes=m),
        }
        for cid, m in (("after-nfc", 5), ("before-nfc", 10))
    ]
    ids = store_events(events)
    RawEvent.objects.filter(correlation_id="before-nfc").update(user_id=DECOMPOSED)
    if trace_backend == "elasticsearch":
        from apps.traces.search.elasticsearch import alias_name, es_client

        index_chunk(event_ids=ids)  # the search documents as the old rows made them
        es_client().indices.refresh(index=alias_name())
    assert set(RawEvent.objects.values_list("user_id", flat=True)) == {COMPOSED, DECOMPOSED}


@pytest.mark.parametrize("typed", [COMPOSED, DECOMPOSED], ids=["typed-composed", "typed-decomposed"])
def test_a_users_requests_are_found_whichever_form_is_typed(support_client, both_forms_stored, typed):
    body = support_client.get(f"/api/v1/users/{quote(typed)}/requests").json()

    assert sorted(r["correlation_id"] for r in body["requests"]) == ["after-nfc", "before-nfc"]
    assert body["total"] == 2


@pytest.mark.parametrize("typed", [COMPOSED, DECOMPOSED], ids=["typed-composed", "typed-decomposed"])
def test_the_search_form_and_the_paste_box_find_either_form(support_client, both_forms_stored, typed):
    searched = support_client.get("/traces/", {"user_id": typed, "range": "all"}).content.decode()
    pasted = support_client.get("/traces/", {"q": typed})

    assert "after-nfc" in searched and "before-nfc" in searched
    assert pasted.status_code == 302, pasted.content[:300]
    page = support_client.get(urlsplit(pasted["Location"]).path).content.decode()
    assert "after-nfc" in page and "before-nfc" in page
