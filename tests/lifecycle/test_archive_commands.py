"""archive_events and replay_archive as an operator runs them: bad arguments refused before any work,
progress off standard output, Ctrl-C answered with what is done and how to go on, status 0 only when all
went."""

import pytest
from django.utils import timezone

from apps.ingest.models import RawEvent
from apps.lifecycle import replay
from apps.lifecycle.archive_layout import Archive
from apps.lifecycle.management.commands import archive_events, replay_archive
from apps.lifecycle.services import retention_apply

pytestmark = pytest.mark.django_db


def archived(run, archive_dir) -> None:
    ran = run("archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", str(archive_dir))
    assert ran.status == 0, ran


def test_archive_refuses_a_from_day_not_before_the_before_day(run, old_events, tmp_path):
    first, second = old_events

    ran = run("archive_events", "--from", f"{second}", "--before", f"{first}", "--to", str(tmp_path / "a"))

    assert ran.status == 1
    assert "--from must be before --before" in ran.message
    assert not (tmp_path / "a").exists()


def test_archive_refuses_a_target_it_cannot_write_before_any_day(run, old_events, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")

    ran = run("archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", str(blocker / "archive"))

    assert ran.status == 1
    assert "cannot write" in ran.message and str(blocker / "archive") in ran.message
    assert ran.out == "" and ran.err == ""  # refused at once, not once per day


def test_archive_interrupted_says_which_days_are_done_and_how_to_go_on(
    run, old_events, tmp_path, monkeypatch
):
    first, second = old_events
    real = archive_events.day_archive

    def archive_then_stop(*, archive, day):
        if day == second:
            raise KeyboardInterrupt
        return real(archive=archive, day=day)

    monkeypatch.setattr(archive_events, "day_archive", archive_then_stop)

    ran = run("archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", str(tmp_path / "a"))

    assert ran.status == 130
    assert f"interrupted while archiving {second}" in ran.message
    assert "1 day archived" in ran.message
    assert f"--from {second}" in ran.message  # where to go on from (a rerun rewrites the same files)


def test_replay_refuses_a_service_the_archive_does_not_hold(run, old_events, archive_dir, inline):
    archived(run, archive_dir)

    ran = run("replay_archive", str(archive_dir), "--service", "gatewya")

    assert ran.status == 1
    assert "'gatewya'" in ran.message and "gateway" in ran.message  # what it does hold
    assert ran.out == ""


def test_replay_refuses_a_directory_that_is_not_an_archive(run, tmp_path):
    (tmp_path / "somewhere").mkdir()

    ran = run("replay_archive", str(tmp_path / "somewhere"))

    assert ran.status == 1
    assert "no date=YYYY-MM-DD" in ran.message


@pytest.mark.parametrize("timeout", ["-5", "nan", "inf", "soon"])
def test_replay_refuses_a_timeout_that_is_not_seconds(run, archive_dir, timeout):
    archive_dir.mkdir()

    ran = run("replay_archive", str(archive_dir), "--timeout", timeout)

    assert ran.status == 1
    assert "--timeout" in ran.message


def test_replay_keeps_progress_off_stdout(run, old_events, archive_dir, inline, monkeypatch):
    archived(run, archive_dir)
    retention_apply()
    monkeypatch.setattr("apps.common.commands.Progress.EVERY", 0.0)

    ran = run("replay_archive", str(archive_dir))

    assert ran.status == 0
    assert "row groups," in ran.err  # the progress lines
    assert "row groups," not in ran.out.replace("row groups, 5 rows", "")
    assert "5 stored" in ran.out


def test_replay_with_a_corrupt_file_replays_the_rest_and_exits_non_zero(run, old_events, archive_dir, inline):
    first, _ = old_events
    archived(run, archive_dir)
    retention_apply()
    broken = Archive.at(str(archive_dir)).part_path(first, "forecast")
    with open(broken, "r+b") as handle:
        handle.seek(-12, 2)
        handle.write(b"\x00" * 12)

    ran = run("replay_archive", str(archive_dir))

    assert ran.status == 1
    assert broken in ran.err
    assert RawEvent.objects.count() == 4


def test_replay_interrupted_says_what_is_stored_and_that_a_rerun_goes_on(
    run, old_events, archive_dir, inline, monkeypatch
):
    archived(run, archive_dir)
    retention_apply()
    real, units = replay.row_group_replay, []

    def replay_then_stop(*, archive, path, row_group):
        if units:
            raise KeyboardInterrupt
        units.append(path)
        return real(archive=archive, path=path, row_group=row_group)

    monkeypatch.setattr(replay_archive, "row_group_replay", replay_then_stop)

    ran = run("replay_archive", str(archive_dir))

    assert ran.status == 130
    assert "1 of 4 row groups replayed" in ran.message
    assert "run the same command again" in ran.message
    stored = RawEvent.objects.count()
    assert 0 < stored < 5

    monkeypatch.setattr(replay_archive, "row_group_replay", real)
    again = run("replay_archive", str(archive_dir))
    assert again.status == 0
    assert f"{5 - stored} stored, {stored} already there" in again.out
    assert RawEvent.objects.count() == 5
