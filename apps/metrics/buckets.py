"""Time buckets: the one place that says where a bucket starts and how long it is (UTC; weeks on Monday)."""

import math
from datetime import UTC, datetime, timedelta

INTERVALS = ("minute", "hour", "day", "week")
STEP = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
# The most buckets one series may have: the series reader refuses more (the explorer coarsens before).
MAX_BUCKETS = 20_000


def floor(moment: datetime, interval: str) -> datetime:
    """Return the start of the bucket holding `moment`, in UTC (weeks start on Monday)."""
    moment = moment.astimezone(UTC)
    if interval == "minute":
        return moment.replace(second=0, microsecond=0)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"unknown interval {interval!r}")


def count(start: datetime, end: datetime, interval: str) -> int:
    """Return how many buckets of `interval` cover [start, end)."""
    return math.ceil((end - floor(start, interval)) / STEP[interval])


def starts(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Return every bucket start of an aligned range [start, end)."""
    out, moment = [], start
    while moment < end:
        out.append(moment)
        moment += STEP[interval]
    return out
