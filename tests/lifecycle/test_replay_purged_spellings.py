"""A user purged by the version before purge_user recorded every Unicode spelling stays out of a replay: its
audit entry holds the one spelling the admin typed, while replay conforms archived user IDs to NFC and a
user-ID property keeps the spelling its service sent."""

import io
import unicodedata
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import AuditEntry
from apps.ingest.models import RawEvent
from apps.lifecycle.archive_layout import Archive, record_batch

from .conftest import at

pytestmark = pytest.mark.django_db

COMPOSED = unicodedata.normalize("NFC", "José")
DECOMPOSED = unicodedata.normalize("NFD", "José")


def archived_row(event_id: str, *, day, user_id: str = "", properties: str = "{}"):
    """An archive row of a counted event received at 01:00:01 of `day` (archive_layout's column order)."""
    return (
        event_id, "gateway", "prod", "metric", "search_made", at(day, 1), at(day, 1, 1), user_id, "", "", "",
        properties, "[]", "node-a", "", "", None, True, at(day, 1),
    )  # fmt: skip


@pytest.mark.parametrize("typed", [DECOMPOSED, COMPOSED], ids=["typed-decomposed", "typed-composed"])
def test_a_user_purged_under_either_spelling_stays_out_of_a_replay(archive_dir, inline, typed):
    archive = Archive.at(str(archive_dir))
    day = timezone.now().date() - timedelta(days=3)
    rows = [
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9b01", day=day, user_id=DECOMPOSED),  # stored pre-NFC
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9b02", day=day, user_id=COMPOSED),
        archived_row(
            "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9b03", day=day, properties=f'{{"userId": "{DECOMPOSED}"}}'
        ),
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9b04", day=day, user_id="someone-else"),
    ]
    archive.write_parquet(archive.part_path(day, "gateway"), [record_batch(rows)])
    # The purge, as the audit log records it (the old version wrote the same): after the rows came.
    AuditEntry.objects.create(
        actor_name="command", action=AuditEntry.USER_PURGED, target=typed, via="command"
    )

    out = io.StringIO()
    call_command("replay_archive", str(archive_dir), stdout=out, stderr=out)

    assert "3 not stored: their user was purged after they were received" in out.getvalue()
    assert list(RawEvent.objects.values_list("user_id", flat=True)) == ["someone-else"]
