"""The soak's reconciliation and goal, given known defects in the stores or in the delivery
(real stores; what the harness reports, never how long anything took)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F

from apps.metrics.models import DaySketch, EventName, RollupNumeric, RollupSketch
from apps.pipeline.services import process_chunk
from apps.traces.search.elasticsearch import alias_name, es_client
from soak.reconcile import Reconciliation, reconcile
from soak.report import Report
from soak.traffic import LedgerSnapshot

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


def events(n: int, *, hours: int = 1) -> list[dict]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "service": "svc-a",
            "event": "search_made",
            "timestamp": (T0 + timedelta(hours=i % hours)).isoformat(),
            "properties": {"duration_ms": 10 + i},
        }
        for i in range(n)
    ]


def keys_of(sent: list[dict]) -> frozenset:
    return frozenset(("svc-a", e["event_id"]) for e in sent)


def figures_for(sent: frozenset, acknowledged: frozenset | None = None) -> Reconciliation:
    acknowledged = sent if acknowledged is None else acknowledged
    ledger = LedgerSnapshot(
        sent=sent, acknowledged=acknowledged, rejected=frozenset(), failed=frozenset(), resent=0
    )
    es = es_client()
    es.indices.refresh(index=alias_name())
    return reconcile(ledger=ledger, es=es, alias=alias_name())


def report_of(figures: Reconciliation) -> Report:
    figures.claims_by_worker = {"soak-worker-1": 1, "soak-worker-2": 1}  # the claim ledger is not under test
    return Report(
        mode="short",
        config={},
        figures=figures,
        faults=[],
        converged=True,
        time_to_converge=1.0,
        converge_limit=120,
    )


def test_an_event_stored_twice_under_a_second_event_id_is_reported(search_on_elasticsearch, store_events):
    # A portal that stores a re-sent event again under an event_id of its own making: one more raw row, one
    # more count in the rollups, one more document. The stores agree with each other; not with the clients.
    sent = events(10)
    process_chunk(event_ids=store_events(sent))
    ghost = {**sent[0], "event_id": str(uuid.uuid4())}
    process_chunk(event_ids=store_events([ghost]))

    figures = figures_for(keys_of(sent))

    assert figures.stored_unsent == 1
    assert not report_of(figures).goal_met


def test_sent_events_never_acknowledged_miss_the_goal(search_on_elasticsearch, store_events):
    # Half the traffic never acknowledged (refused, given up, or still pending when the flush timed out):
    # nothing was lost that the portal promised to keep, but the soak did not show that it keeps it.
    sent = events(10)
    process_chunk(event_ids=store_events(sent[:5]))
    all_keys = keys_of(sent)

    figures = figures_for(all_keys, acknowledged=keys_of(sent[:5]))

    assert (figures.sent, figures.accepted, figures.unacknowledged) == (10, 5, 5)
    assert figures.lost == 0
    assert not report_of(figures).goal_met


def test_stores_that_agree_meet_the_goal(search_on_elasticsearch, store_events):
    sent = events(10)
    process_chunk(event_ids=store_events(sent))

    figures = figures_for(keys_of(sent))

    assert (figures.stored_unsent, figures.unacknowledged, figures.numeric_mismatches) == (0, 0, 0)
    assert report_of(figures).goal_met


def test_a_number_counted_in_the_wrong_hour_is_a_mismatch(search_on_elasticsearch, store_events):
    # One event's duration_ms summed into the next hour's bucket: every group's total still agrees.
    sent = events(4, hours=2)
    process_chunk(event_ids=store_events(sent))
    first, second = RollupNumeric.objects.filter(granularity="hour", prop="duration_ms").order_by(
        "bucket_start"
    )
    moved = sent[0]["properties"]["duration_ms"]
    RollupNumeric.objects.filter(pk=first.pk).update(count=F("count") - 1, sum=F("sum") - moved)
    RollupNumeric.objects.filter(pk=second.pk).update(count=F("count") + 1, sum=F("sum") + moved)

    figures = figures_for(keys_of(sent))

    assert figures.numeric_mismatches == 2  # the two hour buckets, one too low and one too high
    assert not report_of(figures).goal_met


def test_users_missing_from_an_hour_are_a_mismatch(search_on_elasticsearch, store_events):
    # The sketches were never reconciled: a pipeline that left an hour's users out passed the soak.
    sent = [{**e, "user_id": f"user-{i % 3}"} for i, e in enumerate(events(6, hours=2))]
    process_chunk(event_ids=store_events(sent))
    assert figures_for(keys_of(sent)).users_mismatches == 0
    RollupSketch.objects.filter(granularity="hour").order_by("bucket_start").first().delete()

    figures = figures_for(keys_of(sent))

    assert (figures.users_mismatches, figures.double_counted, figures.numeric_mismatches) == (1, 0, 0)
    assert not report_of(figures).goal_met


def test_a_day_of_every_event_missing_a_user_is_a_mismatch(search_on_elasticsearch, store_events):
    # The overview's daily active users read one sketch per day: a pipeline that left it behind passed.
    sent = [{**e, "user_id": f"user-{i % 3}"} for i, e in enumerate(events(6, hours=2))]
    process_chunk(event_ids=store_events(sent))
    assert figures_for(keys_of(sent)).users_mismatches == 0
    DaySketch.objects.all().delete()

    figures = figures_for(keys_of(sent))

    assert (figures.users_mismatches, figures.double_counted, figures.names_mismatches) == (1, 0, 0)
    assert not report_of(figures).goal_met


def test_a_counted_event_missing_from_the_name_catalogue_is_a_mismatch(search_on_elasticsearch, store_events):
    sent = events(4, hours=2)
    process_chunk(event_ids=store_events(sent))
    assert figures_for(keys_of(sent)).names_mismatches == 0
    EventName.objects.all().delete()
    EventName.objects.create(name="never-sent")

    figures = figures_for(keys_of(sent))

    assert figures.names_mismatches == len({e["event"] for e in sent}) + 1
    assert not report_of(figures).goal_met
