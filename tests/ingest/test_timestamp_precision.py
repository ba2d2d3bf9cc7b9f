"""A time finer than a microsecond is cut to the microsecond whichever way it is written: the instant just
before midnight stays on its day in the raw row, the trace, the daily index and the day's count."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.ingest.conform import ConformError, parse_timestamp
from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
from tests.roundtrip import run_pipeline, search_documents, send_batch

pytestmark = pytest.mark.django_db(transaction=True)

LAST_MICROSECOND = datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC)
# 2026-11-20T23:59:59.9999996Z: 400 ns before midnight, written each way a sender writes a time.
SPELLINGS = {
    "iso": "2026-11-20T23:59:59.9999996Z",
    "iso_offset": "2026-11-21T00:59:59.9999996+01:00",
    "epoch_number": 1795219199.9999996,
    "epoch_text": "1795219199.9999996",
    "epoch_ms_number": 1795219199999.9996,
    "epoch_ms_text": "1795219199999.9996",
}


@pytest.mark.parametrize("raw", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_every_spelling_of_a_time_is_cut_to_the_microsecond_not_rounded(raw):
    assert parse_timestamp(raw) == LAST_MICROSECOND


def test_an_epoch_time_keeps_its_microseconds_exactly():
    # Truncating the float's binary value would lose one: 1795219199.123456 is 1795219199.1234559… in binary.
    assert parse_timestamp(1795219199.123456).microsecond == 123456
    assert parse_timestamp("1795219199.000001").microsecond == 1
    assert parse_timestamp(1795219199).microsecond == 0
    assert parse_timestamp(1795219199123).microsecond == 123000


@pytest.mark.parametrize(
    "raw", ["1e999999", "-1e999999", "nan", "Infinity", "sNaN" + "0" * 20, 1e300, 10**400, "1" * 5000]
)
def test_epoch_text_beyond_the_calendar_is_refused_not_a_crash(raw):
    with pytest.raises(ConformError):
        parse_timestamp(raw)


def test_the_instant_before_midnight_stays_on_its_day_everywhere(api_client, make_key, clean_search_index):
    _, key = make_key()
    events = [
        {"event_id": str(uuid.uuid4()), "event": "tick", "correlation_id": "midnight", "timestamp": raw}
        for raw in SPELLINGS.values()
    ]
    assert send_batch(api_client, key, events)["accepted"] == len(SPELLINGS)
    run_pipeline()

    assert set(RawEvent.objects.values_list("timestamp", flat=True)) == {LAST_MICROSECOND}
    documents = search_documents("midnight")
    assert {doc["_index"].rsplit("-", 1)[1] for doc in documents} == {"2026.11.20"}
    assert {doc["_source"]["timestamp"] for doc in documents} == {"2026-11-20T23:59:59.999999+00:00"}
    days = RollupCount.objects.filter(granularity="day", event="tick")
    assert {(row.bucket_start.date().isoformat(), row.count) for row in days} == {
        ("2026-11-20", len(SPELLINGS))
    }


# Microseconds since the epoch from 2000 to 2200: a double holds each of them to better than a microsecond.
MICROSECONDS = st.integers(min_value=946_684_800_000_000, max_value=7_258_118_400_000_000)


@given(MICROSECONDS)
def test_a_microsecond_written_as_an_epoch_number_or_text_reads_back_exactly(microseconds):
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)
    seconds = f"{microseconds // 1_000_000}.{microseconds % 1_000_000:06d}"

    assert parse_timestamp(float(seconds)) == expected
    assert parse_timestamp(seconds) == expected


@given(MICROSECONDS, st.integers(min_value=0, max_value=999))
def test_epoch_text_and_iso_text_with_nanoseconds_name_the_same_microsecond(microseconds, nanoseconds):
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)
    fraction = f"{microseconds % 1_000_000:06d}{nanoseconds:03d}"
    epoch = f"{microseconds // 1_000_000}.{fraction}"
    iso = f"{expected:%Y-%m-%dT%H:%M:%S}.{fraction}Z"

    assert parse_timestamp(epoch) == parse_timestamp(iso) == expected
