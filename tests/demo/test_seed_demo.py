"""`manage.py seed_demo` on PostgreSQL: what it stores is conformed, realistic and repeatable, and the
rollups and trace search answer from it."""

from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError
from django.db.models import Count, Q
from django.utils import timezone

from apps.demo.traffic import FUNNEL, HOP_SERVICES, SERVICES, demo_plan
from apps.ingest.models import ApiKey, RawEvent
from tests.demo.conftest import END, SMALL, seed, stored_fingerprint

pytestmark = pytest.mark.django_db


def test_the_same_seed_stores_the_same_events_and_another_seed_others():
    seed()
    first = stored_fingerprint()
    RawEvent.objects.all().delete()
    seed()
    again = stored_fingerprint()
    RawEvent.objects.all().delete()
    seed(seed=8)
    other = stored_fingerprint()

    assert len(first) > 1000
    assert again == first
    assert {row[1] for row in other}.isdisjoint({row[1] for row in first})


def test_a_second_seed_with_the_same_seed_stores_nothing_twice(seeded):
    count = RawEvent.objects.count()

    output = seed()

    assert RawEvent.objects.count() == count
    assert f"{count:,} events sent" in output and f": 0 stored, {count:,} already there" in output
    assert "(no new events)" in output  # and so no second deploy annotation
    # The demo's keys are made once per service and reused.
    assert ApiKey.objects.filter(label__startswith="demo data").count() == len(SERVICES)


def test_it_prints_a_summary_of_what_it_stored(seeded):
    count = RawEvent.objects.count()
    logs = RawEvent.objects.filter(type="log").count()
    users = RawEvent.objects.exclude(user_id="").values("user_id").distinct().count()
    spans = RawEvent.objects.filter(type="span").count()

    assert f"{count:,} events sent ({logs:,} log lines, {spans:,} spans) by {users:,} users" in seeded
    assert f": {count:,} stored, 0 already there" in seeded
    assert "queued for the Celery workers" in seeded  # the tests' settings have a broker
    assert "to 6 services (gateway, search-api, download-server, download-worker, crop-forecast" in seeded
    assert "over 7 days to 2026-11-30 15:30 UTC (seed 7)" in seeded
    assert "error spike on 2026-11-24; deploy at 2026-11-24 17:40 UTC (" in seeded


def test_every_event_is_conformed_with_its_service_and_stage_from_the_key(seeded):
    rows = RawEvent.objects.values("service", "stage", "api_key__service__name", "api_key__stage")

    assert {row["service"] for row in rows} == set(SERVICES)
    assert all(row["service"] == row["api_key__service__name"] for row in rows)
    assert {row["stage"] for row in rows} == {"prod"} == {row["api_key__stage"] for row in rows}
    # The lessons' log record went through conform: aliases renamed, epoch text read, extras in properties.
    worker_line = RawEvent.objects.filter(service="download-worker", message="Downloaded img").first()
    assert worker_line.type == "log" and worker_line.user_id and worker_line.correlation_id
    assert "userId renamed to user_id" in worker_line.notes
    assert "timestamp read from epoch seconds in a string" in worker_line.notes
    assert set(worker_line.properties) == {"imgId"}


def test_a_request_carries_one_correlation_id_across_the_four_hop_services(seeded):
    services_by_id = defaultdict(set)
    for cid, service in RawEvent.objects.exclude(correlation_id="").values_list("correlation_id", "service"):
        services_by_id[cid].add(service)
    crossing = [cid for cid, services in services_by_id.items() if set(HOP_SERVICES) <= services]

    assert len(crossing) >= 20
    trail = RawEvent.objects.filter(correlation_id=crossing[0])
    assert trail.filter(type="log").values("service").distinct().count() == 4  # a log line at each hop
    assert trail.values("user_id").distinct().count() == 1


def test_the_hop_services_always_carry_a_correlation_id_and_two_services_drop_it(seeded):
    per_service = {
        row["service"]: row["with_id"] / row["events"]
        for row in RawEvent.objects.values("service").annotate(
            events=Count("id"), with_id=Count("id", filter=~Q(correlation_id=""))
        )
    }

    assert all(per_service[service] == 1.0 for service in HOP_SERVICES)
    assert per_service["crop-forecast"] == 0.0
    assert 0.05 < per_service["ship-tracking"] < 0.5


def test_some_requests_are_traced_as_spans_with_parents_and_durations(seeded):
    spans = RawEvent.objects.filter(type="span")
    children = spans.exclude(parent_span_id="")

    assert spans.count() > 50
    assert all(span.duration_ms and span.duration_ms > 0 for span in spans)
    child = children.first()
    parent = spans.get(span_id=child.parent_span_id)
    assert parent.correlation_id == child.correlation_id and parent.service == "gateway"


def test_the_spike_day_has_several_times_the_errors_of_any_other_day(seeded):
    plan = demo_plan(seed=7, days=7, users=200, end=END)
    errors = Counter(
        moment.date() for moment in RawEvent.objects.filter(level="error").values_list("timestamp", flat=True)
    )
    spike = errors.pop(plan.spike_day.date())

    assert spike >= 20
    assert spike > 3 * max(errors.values(), default=0)
    # The deploy annotation, as data, sits on the spike day, after its errors began.
    assert plan.deploy.timestamp.date() == plan.spike_day.date() and plan.deploy.service == "download-server"
    last_spike_error = RawEvent.objects.filter(level="error", timestamp__date=plan.spike_day.date()).latest(
        "timestamp"
    )
    assert last_spike_error.timestamp < plan.deploy.timestamp + timedelta(minutes=5)


def test_users_are_about_as_many_as_asked_with_a_funnel_that_narrows(seeded):
    users_of = {
        step: set(RawEvent.objects.filter(event=step).values_list("user_id", flat=True).distinct())
        for step in FUNNEL
    }

    all_users = set(RawEvent.objects.exclude(user_id="").values_list("user_id", flat=True))
    assert 0.9 * SMALL["users"] <= len(all_users) <= SMALL["users"]
    sizes = [len(users_of[step]) for step in FUNNEL]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 0 and sizes[0] > 2 * sizes[-1]
    for earlier, later in zip(FUNNEL, FUNNEL[1:], strict=False):
        assert users_of[later] <= users_of[earlier]


def test_users_come_back_less_as_time_goes_on(db):
    seed(days=21, users=300)
    first_day = datetime.fromisoformat(SMALL["end"]) - timedelta(days=21)
    searches = RawEvent.objects.filter(event="search_made").values_list("user_id", "timestamp")
    days_of = defaultdict(set)
    for user, moment in searches:
        days_of[user].add((moment - first_day).days)
    cohort = [days for days in days_of.values() if min(days) <= 1]  # users of the first two days
    back_in_week = [
        sum(1 for days in cohort if any(7 * w + 1 < d <= 7 * w + 8 for d in days)) for w in range(2)
    ]

    assert len(cohort) > 50
    assert back_in_week[0] > back_in_week[1] > 0  # a retention curve that falls, not a flat line


def test_the_traffic_spans_the_days_asked_for_ending_at_the_end(db):
    output = seed(days=30, users=30)

    first, last = (
        RawEvent.objects.order_by(order).values_list("timestamp", flat=True)[0]
        for order in ("timestamp", "-timestamp")
    )
    assert END - timedelta(days=30) <= first < END - timedelta(days=29)
    assert END - timedelta(hours=2) < last <= END
    assert "30 days" in output


def test_if_empty_seeds_an_empty_database(db):
    output = seed(if_empty=True)

    assert f"{RawEvent.objects.count():,} stored" in output and RawEvent.objects.exists()


def test_if_empty_leaves_a_database_with_events_alone(db, make_key):
    from apps.ingest.services import events_ingest

    api_key, _ = make_key(service="search-api")
    events_ingest(items=[{"event": "search_made"}], api_key=api_key, received_at=timezone.now())

    output = seed(if_empty=True)

    assert RawEvent.objects.count() == 1
    assert "events are already stored; nothing seeded" in output


@pytest.mark.parametrize(
    ("options", "named"),
    [({"days": 0}, "--days"), ({"users": 0}, "--users"), ({"end": "2026-11-30T15:30:00"}, "--end")],
)
def test_bad_options_are_refused_naming_the_option(db, options, named):
    with pytest.raises(CommandError, match=named):
        seed(**options)
    assert not RawEvent.objects.exists()


def test_the_rollups_answer_with_the_demo_after_the_pipeline(processed, client, make_person):
    client.force_login(make_person("product"))
    searches = RawEvent.objects.filter(event="search_made").count()

    answer = client.get(
        "/api/v1/metrics/series",
        {
            "event": "search_made",
            "measure": "count",
            "interval": "day",
            "from": (END - timedelta(days=7)).isoformat(),
            "to": END.isoformat(),
            "breakdown": "service",
        },
    )

    assert answer.status_code == 200, answer.content
    series = answer.json()["series"]
    assert [(s["name"], s["kind"]) for s in series] == [("search-api", "value")]
    points = [point["v"] for point in series[0]["points"]]
    assert sum(points) == searches and all(v > 0 for v in points[1:])


def test_support_finds_a_seeded_download_trail_and_the_users_requests(
    trace_backend, processed, client, make_person
):
    from apps.traces.search import get_trace_backend

    if get_trace_backend().name == "elasticsearch":
        from apps.traces.search.elasticsearch import alias_name, es_client

        es_client().indices.refresh(index=alias_name())
    worker_line = RawEvent.objects.filter(service="download-worker", message="Downloaded img").first()
    client.force_login(make_person("support"))

    trail = client.get(f"/api/v1/traces/{worker_line.correlation_id}")
    requests = client.get(f"/api/v1/users/{worker_line.user_id}/requests")

    assert trail.status_code == 200, trail.content
    events = trail.json()["events"]
    assert [e["service"] for e in events][0] == "gateway"
    assert {e["service"] for e in events} >= set(HOP_SERVICES)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert "Downloaded img" in [e["message"] for e in events]
    assert requests.status_code == 200
    assert worker_line.correlation_id in [r["correlation_id"] for r in requests.json()["requests"]]


def test_the_deploy_is_annotated(seeded, client, make_person):
    plan = demo_plan(seed=7, days=7, users=200, end=END)
    client.force_login(make_person("product"))

    answer = client.get(
        "/api/v1/annotations", {"from": (END - timedelta(days=7)).isoformat(), "to": END.isoformat()}
    )

    assert "deploy at 2026-11-24 17:40 UTC (annotated)" in seeded
    assert answer.status_code == 200, answer.content
    found = [
        (note["service"], note["text"], datetime.fromisoformat(note["timestamp"].replace("Z", "+00:00")))
        for note in answer.json()["annotations"]
    ]
    assert found == [(plan.deploy.service, plan.deploy.text, plan.deploy.timestamp)]
    assert answer.json()["annotations"][0]["stage"] == "prod"
