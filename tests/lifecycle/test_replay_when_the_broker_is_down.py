"""replay_archive run from a shell while the task broker is down: one line naming it, nothing replayed."""

import pytest

from apps.ingest.models import RawEvent
from apps.lifecycle.services import retention_apply
from tests.common.test_commands_from_a_shell import manage
from tests.lifecycle.test_archive_commands import archived
from tests.pipeline.test_commands_when_the_broker_is_down import broker_down_env, one_line_naming_the_broker

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_replay_with_the_broker_down_is_one_line_and_replays_nothing(run, old_events, archive_dir):
    archived(run, archive_dir)
    retention_apply()
    assert not RawEvent.objects.exists()

    done = manage(broker_down_env(), "replay_archive", str(archive_dir))

    assert one_line_naming_the_broker(done)
    assert not RawEvent.objects.exists()
