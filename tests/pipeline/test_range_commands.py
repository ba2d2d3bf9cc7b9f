"""rebuild_rollups, reindex and retry_dead_letters as an operator runs them: a timeout in seconds, progress on
standard error, Ctrl-C answered with what it left and how to go on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import RollupCount
from apps.pipeline import backfill
from apps.pipeline.management.commands import rebuild_rollups

pytestmark = pytest.mark.django_db

COMMANDS = ["rebuild_rollups", "reindex", "retry_dead_letters"]


def a_range() -> tuple[str, str]:
    today = timezone.now().date()
    return f"{today - timedelta(days=3)}", f"{today}"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("timeout", ["-1", "nan", "inf"])
def test_a_timeout_that_is_not_seconds_is_refused_before_any_work(run, command, timeout, monkeypatch):
    def no_work(**kwargs):
        raise AssertionError("work began")

    monkeypatch.setattr(backfill, "rollups_reset", no_work)
    monkeypatch.setattr(backfill, "index_reset", no_work)
    monkeypatch.setattr(backfill, "dead_letters_requeue", no_work)
    start, end = a_range()

    ran = run(command, "--from", start, "--to", end, "--timeout", timeout)

    assert ran.status == 1
    assert "--timeout" in ran.message


def test_rebuild_progress_is_on_stderr(run, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    start, end = a_range()

    ran = run("rebuild_rollups", "--from", start, "--to", end)

    assert ran.status == 0
    assert "aggregated" not in ran.out  # progress
    assert "rollups rebuilt" in ran.out


def test_rebuild_interrupted_says_how_to_go_on(run, old_events, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RETENTION_RAW_DAYS = 365
    first, second = old_events
    counted = sum(RollupCount.objects.filter(granularity="day").values_list("count", flat=True))

    def stop(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rebuild_rollups.backfill, "enqueue_range", stop)

    ran = run("rebuild_rollups", "--from", f"{first}", "--to", f"{second + timedelta(days=1)}")

    assert ran.status == 130
    assert "run the same command again" in ran.message
    assert f"--from {first}" in ran.message

    monkeypatch.undo()
    again = run("rebuild_rollups", "--from", f"{first}", "--to", f"{second + timedelta(days=1)}")
    assert again.status == 0
    assert sum(RollupCount.objects.filter(granularity="day").values_list("count", flat=True)) == counted
