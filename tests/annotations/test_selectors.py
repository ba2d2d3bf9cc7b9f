"""annotations_between: the range is inclusive at both ends, oldest first, bounded (SQLite and PostgreSQL);
annotations_of_ranges: the same for the several charts of a page."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.annotations.selectors import annotations_between, annotations_of_ranges
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


def test_annotations_of_ranges_reads_once_while_the_ranges_hold_few(django_assert_num_queries):
    for minutes, text in ((0, "start"), (90, "late"), (-60, "early")):
        create_annotation(service="checkout", text=text, timestamp=T + timedelta(minutes=minutes))
    hour, day = (T, T + timedelta(hours=1)), (T - timedelta(days=1), T + timedelta(hours=2))

    with django_assert_num_queries(1):
        found = annotations_of_ranges([hour, day, hour])

    assert [a.text for a in found[hour]] == ["start"]
    assert [a.text for a in found[day]] == ["early", "start", "late"]


def test_annotations_of_ranges_keeps_each_ranges_own_beyond_the_limit():
    for n in range(5):
        create_annotation(service="checkout", text=f"old {n}", timestamp=T - timedelta(days=1, minutes=n))
    create_annotation(service="checkout", text="recent", timestamp=T)
    hour, week = (T - timedelta(hours=1), T), (T - timedelta(days=7), T)

    found = annotations_of_ranges([week, hour], limit=3)

    assert [a.text for a in found[hour]] == ["recent"]
    assert len(found[week]) == 3
