"""annotations_between: the range is inclusive at both ends, oldest first, bounded (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.annotations.selectors import annotations_between
from apps.annotations.services import create_annotation

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_annotations_between_includes_both_ends_and_orders_by_time():
    for minutes, text in ((60, "end"), (-1, "before"), (0, "start"), (30, "middle"), (61, "after")):
        create_annotation(service="checkout", text=text, timestamp=T + timedelta(minutes=minutes))

    found = annotations_between(T, T + timedelta(minutes=60))

    assert [a.text for a in found] == ["start", "middle", "end"]


def test_annotations_between_stops_at_the_limit():
    for n in range(5):
        create_annotation(service="checkout", text=f"deploy {n}", timestamp=T + timedelta(minutes=n))

    assert [a.text for a in annotations_between(T, T + timedelta(hours=1), limit=3)] == [
        "deploy 0",
        "deploy 1",
        "deploy 2",
    ]


def test_create_annotation_refuses_naive_times_and_unknown_fields():
    with pytest.raises(ValueError):
        create_annotation(service="checkout", text="deploy", timestamp=datetime(2026, 11, 30, 14, 0))  # noqa: DTZ001
    with pytest.raises(TypeError):
        create_annotation(service="checkout", text="deploy", timestamp=T, colour="red")
