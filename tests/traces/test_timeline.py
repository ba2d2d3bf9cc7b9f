"""The trail's timeline on its own: lanes per service, points on their first row, spans as bars by depth."""

from datetime import UTC, datetime, timedelta

from apps.traces.search.base import TraceEvent
from apps.traces.timeline import LANE_HEIGHT, MAX_SPAN_ROWS, SPAN_ROW_HEIGHT, WIDTH, timeline_for

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def event(service="gateway", *, at=0.0, type="log", span_id="", parent="", duration=None, level="", name="e"):
    return TraceEvent(
        event_id="x",
        type=type,
        event=name,
        timestamp=T0 + timedelta(seconds=at),
        received_at=T0,
        service=service,
        stage="prod",
        user_id="",
        correlation_id="c",
        level=level,
        message="",
        properties={},
        notes=[],
        span_id=span_id,
        parent_span_id=parent,
        duration_ms=duration,
    )


def span(span_id, parent="", *, service="gateway", at=0.0, duration=100.0, **fields):
    return event(
        service, at=at, type="span", span_id=span_id, parent=parent, duration=duration, name=span_id, **fields
    )


def test_a_trail_without_spans_is_drawn_as_before():
    timeline = timeline_for([event("gateway", at=0), event("tiles", at=1, level="error")])

    assert [(lane.service, lane.y, lane.span_rows) for lane in timeline.lanes] == [
        ("gateway", LANE_HEIGHT / 2, 0),
        ("tiles", LANE_HEIGHT * 1.5, 0),
    ]
    assert timeline.height == 2 * LANE_HEIGHT and timeline.bars == []
    assert [(m.x, m.severity) for m in timeline.marks] == [(10, "normal"), (WIDTH - 10, "error")]


def test_spans_are_bars_from_start_to_end_a_row_per_depth_within_their_lane():
    events = [
        span("a", at=0, duration=1000),
        span("b", "a", at=0.1, duration=200),
        span("c", "b", at=0.2, duration=50, level="error", service="tiles"),
        event("tiles", at=0.25),
    ]

    timeline = timeline_for(events)

    bars = {bar.label.split(" span ")[1].split(":")[0]: bar for bar in timeline.bars}
    assert (bars["a"].x, bars["a"].width) == (10, WIDTH - 20)  # the root spans the whole trail
    assert bars["b"].width == (WIDTH - 20) / 5
    assert (bars["a"].depth, bars["b"].depth, bars["c"].depth) == (0, 1, 0)  # rows within each lane
    assert bars["b"].y == bars["a"].y + SPAN_ROW_HEIGHT
    assert bars["c"].severity == "error" and bars["a"].severity == "normal"
    gateway, tiles = timeline.lanes
    assert (gateway.span_rows, tiles.span_rows) == (2, 1)
    assert tiles.y == LANE_HEIGHT + 2 * SPAN_ROW_HEIGHT + LANE_HEIGHT / 2
    assert bars["c"].y > tiles.y
    assert [m.y for m in timeline.marks] == [tiles.y]  # the log line on its lane's point row
    assert timeline.height == 2 * LANE_HEIGHT + 3 * SPAN_ROW_HEIGHT


def test_overlapping_siblings_get_rows_of_their_own_and_later_ones_reuse_them():
    timeline = timeline_for(
        [
            span("root", at=0, duration=1000),
            span("x", "root", at=0.1),
            span("y", "root", at=0.15),
            span("z", "root", at=0.5),
        ]
    )

    assert [bar.depth for bar in timeline.bars] == [0, 1, 2, 1]


def test_hostile_parent_chains_stay_bounded():
    cycle = [span("a", "b", at=0), span("b", "a", at=0.1)]
    deep = [span(f"s{n}", f"s{n - 1}" if n else "", at=n / 1000, duration=1) for n in range(200)]

    assert len(timeline_for(cycle).bars) == 2
    timeline = timeline_for(deep)
    assert max(bar.depth for bar in timeline.bars) == MAX_SPAN_ROWS - 1
    assert timeline.lanes[0].span_rows == MAX_SPAN_ROWS


def test_a_span_without_a_duration_is_a_thin_bar():
    [bar] = timeline_for([span("a", duration=None), event(at=1)]).bars

    assert bar.width == 2
