"""The two commands that delete: a dry run shows what would go, a refusal leaves nothing done."""

from datetime import UTC, datetime, time

import pytest

from apps.accounts.models import AuditEntry
from apps.common.errors import BackendUnavailable
from apps.ingest.models import RawEvent
from apps.lifecycle import services
from apps.metrics.models import RollupCount

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("user_id", ["", "   "])
def test_an_empty_user_id_is_refused_and_nothing_is_recorded(run, user_id):
    ran = run("purge_user", user_id)

    assert ran.status == 1
    assert "user ID" in ran.message and "empty" in ran.message
    assert not AuditEntry.objects.exists()


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(run, old_events):
    before = RawEvent.objects.count(), list(RollupCount.objects.values_list("count", flat=True))

    ran = run("purge_user", "u1", "--dry-run")

    assert ran.status == 0
    assert "dry run" in ran.out and "2 raw events would be deleted" in ran.out
    assert (RawEvent.objects.count(), list(RollupCount.objects.values_list("count", flat=True))) == before
    assert not AuditEntry.objects.exists()  # nothing was purged: replay must not leave u1 out


def test_a_purge_says_how_many_events_went(run, old_events):
    ran = run("purge_user", "u1")

    assert ran.status == 0
    assert "2 raw events" in ran.out
    assert not RawEvent.objects.filter(user_id="u1").exists()


def test_a_user_no_event_names_is_said_on_stderr(run, old_events):
    ran = run("purge_user", "nobody-at-all")

    assert ran.status == 0
    assert "no stored event names user 'nobody-at-all'" in ran.err


def test_a_purge_with_the_search_cluster_down_is_refused_and_not_recorded(run, old_events, monkeypatch):
    class Down:
        def delete_user(self, user_id, *, properties=()):
            raise BackendUnavailable("http://search:9200: connection refused")

    monkeypatch.setattr(services, "get_trace_backend", Down)

    ran = run("purge_user", "u1")

    assert ran.status == 1
    assert "search cluster is unreachable" in ran.message and "nothing was purged" in ran.message
    assert RawEvent.objects.filter(user_id="u1").count() == 2
    # A purge in the audit log makes replay leave the user's archived events out: only a purge that ran.
    assert not AuditEntry.objects.filter(action=AuditEntry.USER_PURGED).exists()


def test_a_retention_dry_run_counts_what_would_go_and_deletes_nothing(run, old_events):
    ran = run("apply_retention", "--dry-run")

    assert ran.status == 0
    assert "dry run" in ran.out
    assert "5 would be deleted" in ran.out
    assert RawEvent.objects.count() == 5


def test_a_retention_dry_run_names_the_days_the_archive_does_not_hold(run, old_events, archive_dir):
    first, second = old_events

    ran = run("apply_retention", "--dry-run")

    assert "0 would be deleted" in ran.out
    assert f"{first}, {second}" in ran.out
    assert RawEvent.objects.count() == 5


def test_a_purge_takes_every_unicode_spelling_of_the_user_id(run, send_old, days):
    # Rows stored before user IDs were normalized keep the form their service sent (here decomposed, as
    # macOS file names are); the person asking for the purge types the composed one.
    composed, decomposed = "jos\u00e9", "jose\u0301"
    first, _ = days
    stored = send_old(
        [
            {"event": "login", "user_id": composed, "timestamp": f"{first}T10:00:00Z"},
            {"event": "login", "user_id": composed, "timestamp": f"{first}T11:00:00Z"},
        ],
        received_at=datetime.combine(first, time(12), tzinfo=UTC),
    )
    RawEvent.objects.filter(pk=stored[0]).update(user_id=decomposed)

    ran = run("purge_user", composed)

    assert ran.status == 0, ran.message
    assert not RawEvent.objects.filter(user_id__in=[composed, decomposed]).exists()
    purged = set(AuditEntry.objects.filter(action=AuditEntry.USER_PURGED).values_list("target", flat=True))
    assert purged == {composed, decomposed}  # replay leaves either spelling out
