"""RawEvent's indexes: the partial user index still serves every query that names a user."""

import pytest
from django.db import connection

from apps.ingest.models import RawEvent

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
    plan = _plan(RawEvent.objects.filter(user_id="u1").order_by("-timestamp"))

    assert "rawevent_user_ts" in plan


def test_the_user_index_leaves_out_events_without_a_user_on_postgresql():
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            pytest.skip("SQLite keeps the whole index (its planner would not use a partial one here)")
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'rawevent_user_ts'")
        [(definition,)] = cursor.fetchall()

    assert "WHERE (NOT ((user_id)::text = ''::text))" in definition
