"""The trail's timeline: one lane per service, each event placed by time. Rows in, positions out.

A lane's first row holds its points (metric events, log lines); its spans are bars from start to end on the
rows below, a row per depth in the span tree (a span whose parent is not in the trail is a root), and more
rows at one depth where bars of that depth would overlap. Log lines that carry the spans' trace id share
their correlation ID, so they sit on the point row at their moment, under the span that wrote them.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .search.base import LEVEL_RANK, TraceEvent

LANE_HEIGHT = 28
SPAN_ROW_HEIGHT = 14
SPAN_BAR_HEIGHT = 10
# A lane draws at most this many span rows; bars beyond share the last one.
MAX_SPAN_ROWS = 24
# Deeper spans (or a cycle of parents, which a hostile sender can make) count as this deep.
MAX_DEPTH = 64
WIDTH = 1000
MARGIN = 10
MIN_BAR_WIDTH = 2
# Points of one lane and severity closer than this (in the viewBox's units) are one mark that says how many
# events it stands for: 10,000 log lines in a second were 10,000 circles drawn on one another. Errors are
# never merged, so each stays a mark (and a link) of its own.
MERGE_WIDTH = 4


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    severity: str  # "error", "warning" or "normal"
    label: str
    anchor: str
    index: int  # the event's place in the trail (the first, when the mark stands for several)
    count: int = 1  # events the mark stands for


@dataclass(frozen=True)
class Bar:
    """A span: from its start to its end, on its lane's row for its depth."""

    x: float
    y: float
    width: float
    height: float
    severity: str  # "error" or "normal"
    label: str
    anchor: str
    depth: int
    index: int  # the event's place in the trail


@dataclass(frozen=True)
class Lane:
    service: str
    y: float  # the middle of the point row
    span_rows: int = 0
    # One entry per span row, for the template to draw the lane's labels at the bars' height.
    rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    lanes: list[Lane]
    marks: list[Mark]
    height: int
    width: int = WIDTH
    bars: list[Bar] = field(default_factory=list)


def timeline_for(events: list[TraceEvent]) -> Timeline:
    """Place events on lanes (services in order of first appearance) across the trail's duration."""
    if not events:
        return Timeline([], [], 0)
    services: list[str] = []
    for ev in events:
        if ev.service not in services:
            services.append(ev.service)
    start = min(ev.timestamp for ev in events)
    end = max(_end(ev) for ev in events)
    scale = (WIDTH - 2 * MARGIN) / ((end - start).total_seconds() or 1.0)

    spans = [(index, ev) for index, ev in enumerate(events) if ev.is_span]
    rows = _span_rows(spans, _depths([ev for _, ev in spans]))
    lane_rows = {service: 0 for service in services}
    for (_, ev), row in zip(spans, rows, strict=True):
        lane_rows[ev.service] = max(lane_rows[ev.service], row + 1)
    tops: dict[str, float] = {}
    top = 0.0
    for service in services:
        tops[service] = top
        top += LANE_HEIGHT + lane_rows[service] * SPAN_ROW_HEIGHT

    marks: list[Mark] = []
    # Per lane and severity (errors aside), the mark being filled and the events it stands for.
    crowd: dict[tuple[str, str], tuple[Mark, int]] = {}
    for index, ev in enumerate(events):
        if ev.is_span:
            continue
        offset = (ev.timestamp - start).total_seconds()
        x = round(MARGIN + scale * offset, 1)
        severity = _severity(ev.level)
        key = (ev.service, severity)
        if severity != "error" and key in crowd and x - crowd[key][0].x < MERGE_WIDTH:
            first, position = crowd[key]
            merged = replace(first, count=first.count + 1)
            crowd[key] = merged, position
            marks[position] = merged
            continue
        mark = Mark(
            x=x,
            y=tops[ev.service] + LANE_HEIGHT / 2,
            severity=severity,
            label=f"+{offset:.3f}s {ev.service} {ev.level or ev.type}: {ev.message or ev.event}"[:300],
            anchor=f"ev-{index}",
            index=index,
        )
        crowd[key] = mark, len(marks)
        marks.append(mark)
    marks = [
        replace(m, label=f"{m.label} (and {m.count - 1} more here)") if m.count > 1 else m for m in marks
    ]
    # Errors drawn last so they stand out on top of the rest.
    marks.sort(key=lambda m: {"normal": 0, "warning": 1, "error": 2}[m.severity])

    bars = []
    for (index, ev), row in zip(spans, rows, strict=True):
        offset = (ev.timestamp - start).total_seconds()
        duration = (ev.duration_ms or 0.0) / 1000
        label = f"+{offset:.3f}s {ev.service} span {ev.event}: {ev.duration_ms or 0:.3f} ms"
        if ev.message:
            label += f" ({ev.message})"
        bars.append(
            Bar(
                x=round(MARGIN + scale * offset, 1),
                y=tops[ev.service]
                + LANE_HEIGHT
                + row * SPAN_ROW_HEIGHT
                + (SPAN_ROW_HEIGHT - SPAN_BAR_HEIGHT) / 2,
                width=round(max(MIN_BAR_WIDTH, scale * duration), 1),
                height=SPAN_BAR_HEIGHT,
                severity="error" if _severity(ev.level) == "error" else "normal",
                label=label[:300],
                anchor=f"ev-{index}",
                depth=row,
                index=index,
            )
        )
    lanes = [
        Lane(service, tops[service] + LANE_HEIGHT / 2, lane_rows[service], list(range(lane_rows[service])))
        for service in services
    ]
    return Timeline(lanes, marks, round(top), bars=bars)


def _end(ev: TraceEvent) -> datetime:
    if ev.is_span and ev.duration_ms:
        try:
            return ev.timestamp + timedelta(milliseconds=ev.duration_ms)
        except OverflowError:  # a duration past the calendar's end
            return ev.timestamp
    return ev.timestamp


def _severity(level: str) -> str:
    rank = LEVEL_RANK.get(level, 0)
    if rank >= LEVEL_RANK["error"]:
        return "error"
    return "warning" if rank == LEVEL_RANK["warning"] else "normal"


def _depths(spans: list[TraceEvent]) -> list[int]:
    """Return each span's depth in the trail's span tree: 0 for a span whose parent is not in the trail.

    Bounded whatever was sent: a chain of parents is followed at most MAX_DEPTH steps, and a cycle stops
    where it closes.
    """
    parent_of = {ev.span_id: ev.parent_span_id for ev in spans if ev.span_id}
    known: dict[str, int] = {}
    for span_id in parent_of:
        chain: list[str] = []
        current = span_id
        while (
            current in parent_of and current not in known and current not in chain and len(chain) < MAX_DEPTH
        ):
            chain.append(current)
            current = parent_of[current]
        base = known.get(current, -1)
        for distance, link in enumerate(reversed(chain), start=1):
            known[link] = min(base + distance, MAX_DEPTH)
    return [known.get(ev.span_id, 0) for ev in spans]


def _span_rows(spans: list[tuple[int, TraceEvent]], depths: list[int]) -> list[int]:
    """Return each span's row within its lane: rows by depth, and a further row at one depth wherever two
    bars of that depth would overlap."""
    # Per lane and depth, the end of the last bar on each sub-row.
    ends: dict[tuple[str, int], list[datetime]] = defaultdict(list)
    placed: list[tuple[str, int, int]] = []
    for (_, ev), depth in zip(spans, depths, strict=True):
        lane_ends = ends[(ev.service, depth)]
        sub = next((n for n, last in enumerate(lane_ends) if last <= ev.timestamp), len(lane_ends))
        if sub == len(lane_ends):
            lane_ends.append(_end(ev))
        else:
            lane_ends[sub] = _end(ev)
        placed.append((ev.service, depth, sub))
    # A lane's rows, top to bottom: its depths in order, each with as many sub-rows as it needed.
    row_of: dict[tuple[str, int, int], int] = {}
    for service in {service for service, _, _ in placed}:
        row = 0
        for depth in sorted({d for s, d, _ in placed if s == service}):
            for sub in range(len(ends[(service, depth)])):
                row_of[(service, depth, sub)] = min(row, MAX_SPAN_ROWS - 1)
                row += 1
    return [row_of[key] for key in placed]
