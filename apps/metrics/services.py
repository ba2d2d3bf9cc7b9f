"""Writes for rollups: add a chunk of events' deltas with one upsert per table (idempotency is the caller's).

The caller (the pipeline) runs this in the same transaction that marks the events aggregated, so a chunk's
deltas are added exactly once even when a worker dies half-way.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection

from apps.common.bulk import bulk_insert
from apps.common.jsonfields import MAX_SUMMABLE

from .models import GRANULARITIES, RollupCount, RollupNumeric, RollupUser

BucketKey = tuple[datetime, str, str, str, str]  # (bucket_start, granularity, event, service, stage)


def bucket_start(moment: datetime, granularity: str) -> datetime:
    """Return the start of the minute, hour or day bucket holding `moment` (UTC)."""
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown granularity {granularity!r}")


def numeric_properties(properties: dict[str, Any]) -> dict[str, float]:
    """Return the top-level properties that are finite numbers of a summable size (booleans are not numbers
    here); the raw event keeps every value."""
    numbers = {}
    for key, value in properties.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range is not summable
            continue
        if math.isfinite(number) and abs(number) <= MAX_SUMMABLE:
            numbers[key] = number
    return numbers


@dataclass
class RollupDeltas:
    counts: dict[BucketKey, int] = field(default_factory=lambda: defaultdict(int))
    numerics: dict[tuple[BucketKey, str], list[float]] = field(default_factory=dict)  # count, sum, min, max
    users: set[tuple[BucketKey, str]] = field(default_factory=set)


def deltas_for(events: Iterable[Any]) -> RollupDeltas:
    """Return the rollup deltas of events (with timestamp, event, service, stage, user_id, properties)."""
    deltas = RollupDeltas()
    for ev in events:
        numbers = numeric_properties(ev.properties or {})
        for granularity in GRANULARITIES:
            key = (bucket_start(ev.timestamp, granularity), granularity, ev.event, ev.service, ev.stage)
            deltas.counts[key] += 1
            if ev.user_id:
                deltas.users.add((key, ev.user_id))
            for prop, number in numbers.items():
                stats = deltas.numerics.get((key, prop))
                if stats is None:
                    deltas.numerics[(key, prop)] = [1, number, number, number]
                else:
                    stats[0] += 1
                    stats[1] += number
                    stats[2] = min(stats[2], number)
                    stats[3] = max(stats[3], number)
    return deltas


def rollups_apply(*, deltas: RollupDeltas) -> None:
    """Add deltas to the rollup tables. Rows go in sorted order so concurrent workers lock in one order."""
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    bucket_cols = ["bucket_start", "granularity", "event", "service", "stage"]
    bulk_insert(
        RollupCount,
        [*bucket_cols, "count"],
        [(*key, n) for key, n in sorted(deltas.counts.items())],
        conflict=bucket_cols,
        update="count = {t}.count + excluded.count",
    )
    bulk_insert(
        RollupNumeric,
        [*bucket_cols, "prop", "count", "sum", "min", "max"],
        [(*key, prop, *stats) for (key, prop), stats in sorted(deltas.numerics.items())],
        conflict=[*bucket_cols, "prop"],
        update=(
            "count = {t}.count + excluded.count, sum = {t}.sum + excluded.sum, "
            f"min = {least}({{t}}.min, excluded.min), max = {greatest}({{t}}.max, excluded.max)"
        ),
    )
    bulk_insert(
        RollupUser,
        [*bucket_cols, "user_id"],
        [(*key, user) for key, user in sorted(deltas.users)],
        conflict=[*bucket_cols, "user_id"],
    )
