"""`seed_demo` stopped with Ctrl-C: it says the demo is partly stored and gives the command that stores the
rest (the same window: a bare rerun would seed a new one, and `--if-empty` would seed nothing)."""

import pytest

from apps.demo import services
from apps.ingest.models import RawEvent
from tests.demo.conftest import stored_fingerprint

pytestmark = pytest.mark.django_db


def stop_after_two_batches(monkeypatch) -> None:
    real, sent = services._send, []

    def send_then_stop(*args, **kwargs):
        if len(sent) == 2:
            raise KeyboardInterrupt
        sent.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "_send", send_then_stop)


def test_an_interrupted_seed_gives_the_command_that_finishes_the_same_window(run, monkeypatch):
    stop_after_two_batches(monkeypatch)

    ran = run("seed_demo", "--days", "2", "--users", "30", "--if-empty")

    assert ran.status == 130
    assert "interrupted: the demo traffic is partly stored" in ran.message
    stored = RawEvent.objects.count()
    assert stored > 0
    command = ran.message.split("run: ", 1)[1].split()
    assert command[:2] == ["manage.py", "seed_demo"] and "--if-empty" not in command
    monkeypatch.undo()
    finished = run(*command[1:])
    assert finished.status == 0, finished
    partly = stored_fingerprint()
    again = run(*command[1:])
    assert again.status == 0 and stored_fingerprint() == partly  # the same window, nothing twice
    assert f"{stored:,} already there" in finished.out  # the interrupted run's events, not a new window
    assert " 0 stored" in again.out


def test_a_seed_interrupted_before_any_batch_says_nothing_was_stored(run, monkeypatch):
    monkeypatch.setattr(services, "_send", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))

    ran = run("seed_demo", "--days", "1", "--users", "10")

    assert ran.status == 130
    assert "interrupted before any demo event was stored" in ran.message
    assert not RawEvent.objects.exists()
