"""The surrounding logs of a busy window show the events nearest the moment, on both sides of it, and say
which side holds more than is shown."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.traces.search import get_trace_backend

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def busy_window(store_events, monkeypatch):
    """Twenty log lines 10 ms apart; a page holds four."""
    monkeypatch.setattr("apps.traces.selectors.SURROUNDING_LIMIT", 4)  # as if 10,000 lines in one second
    store_events(
        [
            {"service": "tiles", "type": "log", "message": f"line {i}", "correlation_id": f"r-{i}",
             "timestamp": (T0 + timedelta(seconds=i / 100)).isoformat()}
            for i in range(20)
        ]
    )  # fmt: skip


def lines(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"line (\d+)", html)]


@pytest.mark.parametrize(
    ("moment", "shown", "cut_before", "cut_after"),
    [
        (0.15, [13, 14, 15, 16], True, True),  # as many on each side
        (0.01, [0, 1, 2, 3], False, True),  # one before: the rest of the page goes after
        (0.185, [16, 17, 18, 19], True, False),  # one after: the rest of the page goes before
    ],
)
def test_a_busy_window_shows_the_events_nearest_the_moment(
    support_client, trace_backend, busy_window, moment, shown, cut_before, cut_after
):
    params = {"service": "tiles", "at": (T0 + timedelta(seconds=moment)).isoformat(), "seconds": 1}

    html = support_client.get("/traces/r-15/surrounding/", params).content.decode()

    assert lines(html) == shown
    assert ('id="window-cut-before"' in html) is cut_before
    assert ('id="window-cut-after"' in html) is cut_after


def test_from_the_moment_shows_the_moment_and_what_follows(support_client, trace_backend, busy_window):
    params = {"service": "tiles", "at": (T0 + timedelta(seconds=0.15)).isoformat(), "seconds": 1}

    html = support_client.get("/traces/r-15/surrounding/", params | {"from_moment": "1"}).content.decode()

    assert lines(html) == [15, 16, 17, 18]
    assert 'id="window-cut-after"' in html and 'id="window-cut-before"' not in html


def test_a_window_that_fits_is_not_cut(support_client, trace_backend, busy_window, monkeypatch):
    monkeypatch.setattr("apps.traces.selectors.SURROUNDING_LIMIT", 500)
    params = {"service": "tiles", "at": (T0 + timedelta(seconds=0.15)).isoformat(), "seconds": 1}

    html = support_client.get("/traces/r-15/surrounding/", params).content.decode()

    assert lines(html) == list(range(20))
    assert "window-cut" not in html


def test_surrounding_newest_first_reads_back_from_the_end_of_the_window(trace_backend, busy_window):
    events = get_trace_backend().surrounding(
        service="tiles", start=T0, end=T0 + timedelta(seconds=0.1), limit=3, newest_first=True
    )

    assert [event.message for event in events] == ["line 10", "line 9", "line 8"]
