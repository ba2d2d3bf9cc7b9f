"""One contract for both trace backends (database and Elasticsearch): same answers to the same questions."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.traces.search import get_trace_backend
from apps.traces.search.base import TraceQuery

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def request_events(
    cid: str, start: float, *, user: str = "u-1", error: bool = False, services=("gateway", "download")
):
    """A request crossing services: the gateway knows the user, the downstream service logs without it."""
    events = [
        {
            "service": services[0],
            "event": "request_received",
            "correlation_id": cid,
            "user_id": user,
            "timestamp": at(start),
            "properties": {"path": "/tiles"},
        },
        {
            "service": services[1],
            "type": "log",
            "level": "error" if error else "info",
            "correlation_id": cid,
            "message": "upstream timeout after 30s" if error else "tile served",
            "timestamp": at(start + 0.25),
        },
    ]
    return events


def test_a_trail_is_every_event_of_the_id_in_time_order(trace_backend, store_events):
    store_events(
        [
            {
                "service": "download",
                "type": "log",
                "message": "third",
                "correlation_id": "c-1",
                "timestamp": at(2),
            },
            {
                "service": "gateway",
                "event": "first",
                "correlation_id": "c-1",
                "timestamp": at(0),
                "userId": "u-9",
                "properties": {"nested": {"deep": [1, 2]}},
            },
            {
                "service": "tiles",
                "type": "log",
                "level": "warn",
                "message": "second",
                "correlation_id": "c-1",
                "timestamp": at(1),
            },
            {"service": "gateway", "event": "other request", "correlation_id": "c-2", "timestamp": at(1)},
        ]
    )

    trail = get_trace_backend().trail("c-1")

    assert [(e.service, e.event, e.message) for e in trail] == [
        ("gateway", "first", ""),
        ("tiles", "log", "second"),
        ("download", "log", "third"),
    ]
    first = trail[0]
    assert first.user_id == "u-9"
    assert first.properties == {"nested": {"deep": [1, 2]}}
    assert "userId renamed to user_id" in first.notes
    assert first.timestamp == T0
    assert trail[1].level == "warning"
    assert first.stage == "prod" and first.received_at >= first.timestamp


def test_numbers_in_properties_come_back_exactly_beyond_64_bits(trace_backend, store_events):
    # Stored exactly (jsonb), indexed, and read back without becoming floats on either backend.
    numbers = {"order": 2**70 + 1, "negative": -(2**65) - 3, "ratio": 0.1, "small": 7}
    store_events([{"service": "gateway", "event": "big", "correlation_id": "c-big", "properties": numbers}])

    [event] = get_trace_backend().trail("c-big")

    assert event.properties == numbers
    assert all(type(event.properties[key]) is type(value) for key, value in numbers.items())


def test_spans_come_back_with_their_ids_and_duration_beside_log_lines(trace_backend, store_events):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    store_events(
        [
            {
                "service": "gateway",
                "type": "span",
                "event": "GET /tiles",
                "span_id": "00f067aa0ba902b7",
                "duration_ms": 250.5,
                "correlation_id": trace_id,
                "timestamp": at(0),
            },
            {
                "service": "tiles",
                "type": "span",
                "event": "render",
                "span_id": "53995c3f42cd8ad8",
                "parent_span_id": "00f067aa0ba902b7",
                "duration_ms": 0.125,
                "level": "error",
                "correlation_id": trace_id,
                "timestamp": at(0.1),
            },
            {
                "service": "tiles",
                "type": "log",
                "message": "cache miss",
                "correlation_id": trace_id,
                "timestamp": at(0.05),
            },
        ]
    )

    trail = get_trace_backend().trail(trace_id)

    assert [(e.type, e.event, e.span_id, e.parent_span_id, e.duration_ms, e.level) for e in trail] == [
        ("span", "GET /tiles", "00f067aa0ba902b7", "", 250.5, ""),
        ("log", "log", "", "", None, "info"),
        ("span", "render", "53995c3f42cd8ad8", "00f067aa0ba902b7", 0.125, "error"),
    ]


def test_an_unknown_id_has_an_empty_trail(trace_backend, store_events):
    store_events(request_events("c-1", 0))

    assert get_trace_backend().trail("no-such-id") == []


def test_requests_are_grouped_by_id_newest_first_with_whole_request_summaries(trace_backend, store_events):
    store_events(
        request_events("old", 0) + request_events("new", 60, error=True) + request_events("x", 30, user="u-2")
    )

    page = get_trace_backend().search_requests(TraceQuery(user_id="u-1"), page=1, per_page=10)

    assert [r.correlation_id for r in page.requests] == ["new", "old"]
    newest = page.requests[0]
    # the downstream log line has no user_id, yet it belongs to the request's summary
    assert newest.count == 2
    assert newest.services == ["download", "gateway"]
    assert newest.worst_level == "error"
    assert newest.first == T0 + timedelta(seconds=60)
    assert newest.last == T0 + timedelta(seconds=60.25)
    assert newest.duration_seconds == pytest.approx(0.25)
    assert page.total == 2
    assert page.requests[1].worst_level == "info"


def test_the_time_range_bounds_the_search(trace_backend, store_events):
    store_events(request_events("early", 0) + request_events("late", 3600))

    page = get_trace_backend().search_requests(
        TraceQuery(user_id="u-1", start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=2)),
        page=1,
        per_page=10,
    )

    assert [r.correlation_id for r in page.requests] == ["late"]


def test_pagination_walks_every_request_once_in_order(trace_backend, store_events):
    events = []
    for i in range(7):
        events += request_events(f"req-{i}", i * 10)
    store_events(events)
    backend = get_trace_backend()

    pages = [backend.search_requests(TraceQuery(user_id="u-1"), page=n, per_page=3) for n in (1, 2, 3)]

    assert [[r.correlation_id for r in p.requests] for p in pages] == [
        ["req-6", "req-5", "req-4"],
        ["req-3", "req-2", "req-1"],
        ["req-0"],
    ]
    assert [p.has_next for p in pages] == [True, True, False]
    assert pages[0].total == 7 and pages[0].pages == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TraceQuery(service="billing"), ["b"]),
        (TraceQuery(level="error"), ["a"]),
        (TraceQuery(event="request_received", service="gateway"), ["c", "a"]),
        (TraceQuery(text="upstream timeout"), ["a"]),
        (TraceQuery(text="TIMEOUT"), ["a"]),
        (TraceQuery(correlation_id="b"), ["b"]),
    ],
)
def test_filters(trace_backend, store_events, query, expected):
    store_events(
        request_events("a", 0, error=True)
        + request_events("b", 10, services=("billing", "download"))
        + request_events("c", 20)
    )

    page = get_trace_backend().search_requests(query, page=1, per_page=10)

    assert [r.correlation_id for r in page.requests] == expected


@pytest.mark.parametrize(
    "text", ["*:*", "(unbalanced", '"half quoted', "_index:obs-events", "a AND OR NOT", "x" * 500]
)
def test_hostile_search_text_finds_nothing_and_never_fails(trace_backend, store_events, text):
    store_events(request_events("a", 0))

    page = get_trace_backend().search_requests(TraceQuery(text=text), page=1, per_page=10)

    assert page.requests == []


def test_surrounding_logs_are_one_service_in_a_window_whatever_the_id(trace_backend, store_events):
    store_events(request_events("a", 0) + request_events("b", 5) + request_events("far", 600))

    events = get_trace_backend().surrounding(
        service="download", start=T0 - timedelta(seconds=30), end=T0 + timedelta(seconds=30), limit=100
    )

    assert [(e.service, e.correlation_id) for e in events] == [("download", "a"), ("download", "b")]


def test_a_correlation_id_exists_only_when_an_event_has_exactly_it(trace_backend, store_events):
    store_events(
        request_events("req/1 50%", 0)
        + [{"service": "gateway", "event": "no request", "timestamp": at(5), "user_id": "u-9"}]
    )
    backend = get_trace_backend()

    assert backend.correlation_exists("req/1 50%") is True
    assert [
        backend.correlation_exists(other)
        for other in ("REQ/1 50%", "req/1", "req/1 50% ", "u-1", "", "*", "req\x00", "\ud800")
    ] == [False] * 8


def test_a_user_id_exists_only_when_an_event_has_exactly_it(trace_backend, store_events):
    store_events(
        request_events("c-1", 0, user="Ada.Lovelace")
        + [{"service": "gateway", "event": "anonymous", "correlation_id": "c-2", "timestamp": at(5)}]
    )
    backend = get_trace_backend()

    assert backend.user_exists("Ada.Lovelace") is True
    assert [backend.user_exists(other) for other in ("ada.lovelace", "Ada", "c-1", "", "*", "Ada\x00")] == [
        False
    ] * 6


def test_nothing_exists_before_anything_is_stored(trace_backend):
    backend = get_trace_backend()

    assert backend.correlation_exists("c-1") is False
    assert backend.user_exists("u-1") is False


def test_requests_tied_on_their_newest_moment_page_by_correlation_id(trace_backend, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "opened",
                "correlation_id": cid,
                "user_id": "u-1",
                "timestamp": at(0),
            }
            for cid in ("d", "b", "c", "a", "e")
        ]
    )
    backend = get_trace_backend()

    pages = [backend.search_requests(TraceQuery(user_id="u-1"), page=n, per_page=2) for n in (1, 2, 3)]

    assert [[r.correlation_id for r in p.requests] for p in pages] == [["a", "b"], ["c", "d"], ["e"]]


def test_request_summaries_keep_microseconds(trace_backend, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "a",
                "correlation_id": "c",
                "user_id": "u-1",
                "timestamp": at(0.000123),
            },
            {"service": "tiles", "event": "b", "correlation_id": "c", "timestamp": at(0.000457)},
        ]
    )

    [summary] = get_trace_backend().search_requests(TraceQuery(user_id="u-1"), page=1, per_page=5).requests

    assert (summary.first, summary.last) == (
        T0 + timedelta(microseconds=123),
        T0 + timedelta(microseconds=457),
    )
    assert summary.duration_seconds == pytest.approx(0.000334)


@pytest.mark.parametrize("text", ["*", "-42", "timeout | served", "served -timeout"])
def test_search_text_is_words_that_must_all_be_in_the_message_not_operators(
    trace_backend, store_events, text
):
    store_events(
        [
            {
                "service": "gateway",
                "type": "log",
                "message": "upstream timeout",
                "correlation_id": "a",
                "timestamp": at(0),
            },
            {
                "service": "gateway",
                "type": "log",
                "message": "tile served",
                "correlation_id": "b",
                "timestamp": at(1),
            },
        ]
    )

    page = get_trace_backend().search_requests(TraceQuery(text=text), page=1, per_page=10)

    assert page.requests == []


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1950, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 50, tzinfo=UTC),
        datetime(8999, 1, 1, tzinfo=UTC),
    ],
)
def test_surrounding_logs_of_a_window_nothing_can_be_stored_in_are_empty(trace_backend, store_events, moment):
    store_events(request_events("a", 0))

    events = get_trace_backend().surrounding(
        service="download", start=moment, end=moment + timedelta(seconds=60), limit=10
    )

    assert events == []


def test_the_requests_of_several_users_are_each_users_first_page(trace_backend, store_events):
    events = []
    for i in range(4):
        events += request_events(f"a-{i}", i * 10, user="u-a")
    events += request_events("b-0", 5, user="u-b") + request_events("shared", 50, user="u-a")
    events += request_events("shared", 51, user="u-b") + request_events("late", 7200, user="u-b")
    store_events(events)
    backend = get_trace_backend()
    users = ["u-a", "u-b", "u-nobody", "bad\x00id"]
    end = T0 + timedelta(hours=1)

    found = backend.requests_of_users(users, start=T0, end=end, per_user=3)

    assert set(found) == set(users)
    for user in users:
        page = backend.search_requests(TraceQuery(user_id=user, start=T0, end=end), page=1, per_page=3)
        assert found[user].requests == page.requests, user
        assert found[user].has_more == page.has_next, user
    assert [r.correlation_id for r in found["u-a"].requests] == ["shared", "a-3", "a-2"]
    assert found["u-a"].has_more and not found["u-b"].has_more
    assert [r.correlation_id for r in found["u-b"].requests] == ["shared", "b-0"]
