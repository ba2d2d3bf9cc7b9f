"""RawEvent's indexes: the partial user index still serves every query that names a user."""

import factory
import pytest
from django.db import connection

from apps.ingest.models import RawEvent
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Statistics left by earlier tests (thousands of rows of user u1, say) would make a backward scan
            # of rawevent_ts look cheaper: plan with the statistics of this test's (empty) table.
            cursor.execute("ANALYZE ingest_rawevent")
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether the index can serve
        return queryset.explain()


def test_a_users_events_are_found_through_rawevent_user_ts():
    # Enough users that one of them is selective, and fresh statistics: on an empty table the planner may
    # as well walk the timestamp index backwards and filter.
    RawEventFactory.create_batch(
        400, api_key=None, user_id=factory.Iterator([f"u{i}" for i in range(80)] + [""])
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingest_rawevent")

    plan = _plan(RawEvent.objects.filter(user_id="u1").order_by("-timestamp"))

    assert any(name in plan for name in _index_and_its_partitions("rawevent_user_ts"))


def _index_and_its_partitions(name: str) -> list[str]:
    """Return the index's name and, where the table is partitioned (PostgreSQL), its partitions' indexes."""
    if connection.vendor != "postgresql":
        return [name]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [name],
        )
        return [name, *(row[0] for row in cursor.fetchall())]


def test_the_user_index_leaves_out_events_without_a_user_on_postgresql():
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            pytest.skip("SQLite keeps the whole index (its planner would not use a partial one here)")
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'rawevent_user_ts'")
        [(definition,)] = cursor.fetchall()

    assert "WHERE (NOT ((user_id)::text = ''::text))" in definition
