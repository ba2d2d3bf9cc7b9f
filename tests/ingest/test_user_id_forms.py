"""One person is one user ID whichever Unicode form a service wrote it in: "José" with a composed é (NFC,
what most keyboards type) and with e + combining accent (NFD, what macOS file names and some iOS text hold)
are the same user on the charts, the users' requests and the trace pages."""

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.ingest.models import RawEvent
from apps.metrics.selectors import SeriesQuery, series_for
from tests.roundtrip import run_pipeline, send_batch

pytestmark = pytest.mark.django_db(transaction=True)

COMPOSED = unicodedata.normalize("NFC", "José Müller")
DECOMPOSED = unicodedata.normalize("NFD", "José Müller")
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def test_both_unicode_forms_of_a_user_id_are_one_user_everywhere(
    api_client, make_key, clean_search_index, support_client
):
    assert COMPOSED != DECOMPOSED
    _, web_key = make_key(service="web")
    _, ios_key = make_key(service="ios")
    for key, user_id, cid in ((web_key, COMPOSED, "from-web"), (ios_key, DECOMPOSED, "from-ios")):
        event = {
            "event_id": str(uuid.uuid4()),
            "event": "search_made",
            "user_id": user_id,
            "correlation_id": cid,
            "timestamp": "2026-11-20T09:00:00Z",
        }
        send_batch(api_client, key, [event])
    run_pipeline()

    [users] = series_for(
        SeriesQuery(events=("search_made",), measure="unique_users", start=DAY, end=DAY + timedelta(days=1))
    )
    assert sum(v for _, v in users.points) == 1
    body = support_client.get(f"/api/v1/users/{COMPOSED}/requests").json()
    assert sorted(r["correlation_id"] for r in body["requests"]) == ["from-ios", "from-web"]
    trail = support_client.get("/api/v1/traces/from-ios").json()["events"]
    assert trail[0]["user_id"] == COMPOSED
    assert set(RawEvent.objects.values_list("user_id", flat=True)) == {COMPOSED}
    ios_notes = RawEvent.objects.get(service="ios").notes
    assert "user_id normalized to Unicode NFC (the same characters, composed)" in ios_notes


def test_an_ascii_user_id_is_stored_as_sent_with_no_note(api_client, make_key):
    _, key = make_key()
    send_batch(api_client, key, [{"event": "e", "user_id": "user-42", "event_id": str(uuid.uuid4())}])

    [(user_id, notes)] = RawEvent.objects.values_list("user_id", "notes")
    assert user_id == "user-42" and not any("user_id" in note for note in notes)


def test_a_user_id_that_grows_past_the_limit_in_nfc_is_refused_alone(api_client, make_key):
    # U+0958 is one code point as sent and two in NFC (a composition exclusion): 200 of them are 400.
    _, key = make_key()
    items = [{"event": "e", "user_id": "\u0958" * 200}, {"event": "e", "user_id": "ok"}]
    answer = send_batch(api_client, key, items)

    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {"index": 0, "errors": {"user_id": "must be at most 200 printable characters"}}
    ]
