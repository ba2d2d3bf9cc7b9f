"""Retention and purge against the real PostgreSQL and Elasticsearch: nothing left behind."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.common.errors import BackendUnavailable
from apps.ingest.models import IndexBacklog, RawEvent
from apps.ingest.services import events_ingest
from apps.lifecycle.services import user_purge
from apps.metrics.models import RollupCount, RollupNumeric
from apps.metrics.selectors import SeriesQuery, series_for
from apps.pipeline.services import aggregate_chunk, process_chunk
from apps.traces.search import get_trace_backend
from apps.traces.search.elasticsearch import alias_name, es_client

pytestmark = pytest.mark.django_db


def run(command: str, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def indices() -> set[str]:
    return set(es_client().indices.get(index=f"{alias_name()}-*"))


def documents(**term) -> int:
    es_client().indices.refresh(index=alias_name())
    return es_client().count(index=alias_name(), query={"term": term})["count"]


def unique_users_per_day(event: str) -> float:
    """Return the unique users of the event on 2026-11-20, as the series API reads them."""
    day = datetime(2026, 11, 20, tzinfo=UTC)
    [series] = series_for(
        SeriesQuery(events=(event,), measure="unique_users", start=day, end=day + timedelta(days=1))
    )
    return sum(v for _, v in series.points)


@pytest.fixture
def es_backend(settings, clean_search_index):
    from apps.traces.search import _backend_for

    settings.TRACE_BACKEND = "apps.traces.search.elasticsearch.ElasticsearchTraceBackend"
    _backend_for.cache_clear()


def test_retention_deletes_old_raw_events_and_indices_but_keeps_rollups(es_backend, store_events):
    now = timezone.now()
    ages = {"ancient": 100, "old": 40, "recent": 1}
    ids = store_events(
        [
            {
                "event": name,
                "service": "gateway",
                "user_id": "u1",
                "timestamp": (now - timedelta(days=days)).isoformat(),
            }
            for name, days in ages.items()
        ]
    )
    aggregate_chunk(event_ids=ids)
    pending = store_events(
        [
            {
                "event": "ancient_unprocessed",
                "service": "gateway",
                "timestamp": (now - timedelta(days=100, minutes=5)).isoformat(),
            }
        ]
    )
    day = lambda days: f"{alias_name()}-{(now - timedelta(days=days)):%Y.%m.%d}"  # noqa: E731
    assert {day(100), day(40), day(1)} <= indices()

    text = run("apply_retention")

    assert set(RawEvent.objects.values_list("event", flat=True)) == {"old", "recent", "ancient_unprocessed"}
    assert RawEvent.objects.filter(pk__in=pending).exists()
    assert day(100) not in indices() and day(40) not in indices() and day(1) in indices()
    assert RollupCount.objects.filter(event="ancient", granularity="day").get().count == 1
    assert "1 deleted, 1 kept because not yet processed" in text
    assert day(40) in text and day(100) in text


def test_retention_deletes_old_raw_events_while_the_search_cluster_is_down(es_backend, store_events):
    now = timezone.now()
    ids = store_events(
        [
            {"event": name, "service": "gateway", "timestamp": (now - timedelta(days=days)).isoformat()}
            for name, days in {"ancient": 100, "recent": 1}.items()
        ]
    )
    aggregate_chunk(event_ids=ids)
    out = io.StringIO()
    # The discard port: nothing listens, so the connection is refused. Set only here: the index fixture's
    # teardown needs the real cluster.
    with override_settings(ELASTICSEARCH_URL="http://127.0.0.1:9"):
        with pytest.raises(
            CommandError, match="search indices before .* could not be dropped: http://127.0.0.1:9"
        ):
            call_command("apply_retention", stdout=out)

    assert set(RawEvent.objects.values_list("event", flat=True)) == {"recent"}
    assert "1 deleted" in out.getvalue()


def test_purge_user_removes_them_everywhere_and_corrects_the_rollups(es_backend, store_events):
    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    events = []
    for user in ("alice", "bob"):
        for i in range(3):
            events.append(
                {
                    "event": "search_made",
                    "service": "gateway",
                    "user_id": user,
                    "correlation_id": f"{user}-{i}",
                    "timestamp": (t0 + timedelta(minutes=i)).isoformat(),
                    "properties": {"n_results": 10},
                }
            )
    ids = store_events(events)
    aggregate_chunk(event_ids=ids)
    assert documents(user_id="alice") == 3

    text = run("purge_user", "alice")

    assert not RawEvent.objects.filter(user_id="alice").exists()
    # Counted without a search bulk, all six waited in the index backlog: alice's left with her events.
    bobs = set(RawEvent.objects.filter(user_id="bob").values_list("pk", flat=True))
    assert set(IndexBacklog.objects.values_list("raw_id", flat=True)) == bobs and len(bobs) == 3
    assert documents(user_id="alice") == 0
    assert documents(user_id="bob") == 3
    assert unique_users_per_day("search_made") == 1  # bob only
    assert RollupCount.objects.filter(granularity="day").aggregate(s=Sum("count"))["s"] == 3
    numeric = RollupNumeric.objects.get(granularity="day", prop="n_results")
    assert (numeric.count, numeric.sum) == (3, 30)
    # 1 hour and 1 day held alice as a unique user (users are not rolled up by minute)
    assert "3 raw events, 3 search documents deleted; 2 unique-user buckets corrected" in text
    assert run("purge_user", "alice").startswith("user 'alice': 0 raw events, 0 search documents")
    assert "0 messages still mention the user (free text, not covered)" in text
    from apps.accounts.models import AuditEntry

    assert AuditEntry.objects.filter(action="user_purged", target="alice", via="command").count() == 2


def test_purge_covers_user_id_properties_and_min_max_and_says_what_it_does_not_cover(
    es_backend, store_events, caplog
):
    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    at = t0.isoformat()
    ids = store_events(
        [
            # carol's own events, one with the largest latency of the bucket
            {"event": "download", "user_id": "carol", "timestamp": at, "properties": {"ms": 900}},
            # carol named only in properties, beside another top-level user (dave's only event here)
            {
                "event": "download",
                "user_id": "dave",
                "timestamp": at,
                "properties": {"userId": "carol", "ms": 5},
            },
            {"event": "download", "timestamp": at, "properties": {"user_id": "carol", "ms": 7}},
            {"event": "download", "timestamp": at, "properties": {"uid": "carol"}},
            # as an OpenTelemetry record keeps a user.id that differs from its enduser.id
            {"event": "download", "user_id": "carol", "timestamp": at, "properties": {"user.id": "carol"}},
            {"event": "download", "timestamp": at, "properties": {"user.id": "carol"}},
            # left alone: another user, and free text that mentions carol
            {"event": "download", "user_id": "erin", "timestamp": at, "properties": {"ms": 40}},
            {"type": "log", "message": "retrying the download for carol", "timestamp": at},
        ]
    )
    aggregate_chunk(event_ids=ids)

    text = run("purge_user", "carol")

    assert list(RawEvent.objects.order_by("pk").values_list("user_id", "message")) == [
        ("erin", ""),
        ("", "retrying the download for carol"),
    ]
    places = ("properties.userId", "properties.user_id", "properties.uid", "properties.user.id")
    for place in ("user_id", *places):
        assert documents(**{place: "carol"}) == 0
    assert documents(user_id="erin") == 1
    # Rollups equal what remains: count, sum, min and max of the numbers, and the users.
    assert RollupCount.objects.get(granularity="day", event="download").count == 1
    numeric = RollupNumeric.objects.get(granularity="day", prop="ms")
    assert (numeric.count, numeric.sum, numeric.min, numeric.max) == (1, 40, 40, 40)
    assert unique_users_per_day("download") == 1  # erin; dave's only event here was carol's
    assert "6 raw events" in text
    assert "1 messages still mention the user (free text, not covered)" in text
    # The portal ships its own log lines into its events: the purge's line must not name the user.
    assert [r.getMessage() for r in caplog.records if "purged a user" in r.getMessage()]
    assert not [r for r in caplog.records if "carol" in r.getMessage()]


def test_purge_just_after_indexing_leaves_no_search_document(es_backend, make_key):
    api_key, _ = make_key(service="gateway")
    now = timezone.now()
    items = [
        {"event": "search_made", "user_id": "carol", "correlation_id": f"c-{i}", "timestamp": now.isoformat()}
        for i in range(3)
    ]
    ids = events_ingest(items=items, api_key=api_key, received_at=now).stored_ids
    outcome = process_chunk(event_ids=ids)  # what a worker does a moment after the 202, within the refresh
    assert outcome.aggregated.done == 3 and not outcome.index_unavailable

    report = user_purge(user_id="carol", actor=Actor.command())

    assert report.raw_events_deleted == 3 and report.search_documents_deleted == 3
    assert documents(user_id="carol") == 0
    assert get_trace_backend().trail("c-0") == []


def test_a_purge_the_index_refuses_is_an_error_not_an_endless_loop(es_backend, store_events):
    store_events([{"event": "search_made", "user_id": "carol", "timestamp": timezone.now().isoformat()}])
    client = es_client()
    client.indices.put_settings(index=f"{alias_name()}-*", settings={"index.blocks.write": True})
    try:
        with pytest.raises(BackendUnavailable, match="could not be deleted"):
            get_trace_backend().delete_user("carol")
    finally:
        client.indices.put_settings(index=f"{alias_name()}-*", settings={"index.blocks.write": None})
    assert documents(user_id="carol") == 1
