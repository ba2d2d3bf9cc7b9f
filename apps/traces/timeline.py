"""The trail's timeline: one lane per service, each event placed by time. Rows in, positions out."""

from dataclasses import dataclass

from .search.base import LEVEL_RANK, TraceEvent

LANE_HEIGHT = 28
WIDTH = 1000


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    severity: str  # "error", "warning" or "normal"
    label: str
    anchor: str


@dataclass(frozen=True)
class Timeline:
    lanes: list[tuple[str, float]]  # (service, y of the lane's middle)
    marks: list[Mark]
    height: int
    width: int = WIDTH


def timeline_for(events: list[TraceEvent]) -> Timeline:
    """Place events on lanes (services in order of first appearance) across the trail's duration."""
    services: list[str] = []
    for ev in events:
        if ev.service not in services:
            services.append(ev.service)
    lane_y = {service: i * LANE_HEIGHT + LANE_HEIGHT / 2 for i, service in enumerate(services)}
    if not events:
        return Timeline([], [], 0)
    start, end = events[0].timestamp, events[-1].timestamp
    span = (end - start).total_seconds() or 1.0
    marks = []
    for index, ev in enumerate(events):
        rank = LEVEL_RANK.get(ev.level, 0)
        severity = (
            "error"
            if rank >= LEVEL_RANK["error"]
            else "warning"
            if rank == LEVEL_RANK["warning"]
            else "normal"
        )
        offset = (ev.timestamp - start).total_seconds()
        marks.append(
            Mark(
                x=round(10 + (WIDTH - 20) * offset / span, 1),
                y=lane_y[ev.service],
                severity=severity,
                label=f"+{offset:.3f}s {ev.service} {ev.level or ev.type}: {ev.message or ev.event}"[:300],
                anchor=f"ev-{index}",
            )
        )
    # Errors drawn last so they stand out on top of the rest.
    marks.sort(key=lambda m: {"normal": 0, "warning": 1, "error": 2}[m.severity])
    return Timeline([(s, lane_y[s]) for s in services], marks, len(services) * LANE_HEIGHT)
