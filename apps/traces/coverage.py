"""Correlation coverage: per service, how much of its traffic carries a correlation ID, and how many
trails it started rather than continued (the lessons' "create a correlation ID at every external call").

Read from the raw events (the source of truth) in ONE grouped statement, on PostgreSQL and SQLite alike.
Metric events and log lines count; spans do not (OTLP gives every span its trace ID, so they would hide a
service's gaps).

"Started" is computed, not guessed from names: a service started a trail (a correlation ID) when its
earliest event of that trail in the range is the trail's earliest event in the range, across services.
Every other trail it appears in it continued (the ID came from upstream). Two services tied on the
trail's first moment both count as starting it. A trail that began before `start` is judged on what the
range holds.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from apps.ingest.models import STAMPED_FROM_SQL, RawEvent, stamped_from

# Below this share of events with a correlation ID a service is flagged on the overview and in the API.
COVERAGE_THRESHOLD = 0.9
COUNTED_TYPES = ("metric", "log")


@dataclass(frozen=True)
class ServiceCoverage:
    service: str
    events: int  # metric events and log lines in the range
    with_correlation_id: int
    trails: int  # distinct correlation IDs the service's events carry
    started: int  # of those, trails whose first event in the range is this service's

    @property
    def share(self) -> float:
        return self.with_correlation_id / self.events if self.events else 1.0

    @property
    def percent(self) -> float:
        """The share in per cent, rounded down to 0.1 so that a flagged service never reads "90.0"."""
        return math.floor(self.share * 1000) / 10

    @property
    def continued(self) -> int:
        return self.trails - self.started

    @property
    def flagged(self) -> bool:
        return self.share < COVERAGE_THRESHOLD

    def as_json(self) -> dict:
        return {
            "service": self.service,
            "events": self.events,
            "with_correlation_id": self.with_correlation_id,
            "share": round(self.share, 4),
            "trails": self.trails,
            "started": self.started,
            "continued": self.continued,
            "flagged": self.flagged,
        }


def _sql() -> str:
    table = connection.ops.quote_name(RawEvent._meta.db_table)
    return f"""
        SELECT service,
               COUNT(*),
               COUNT(*) FILTER (WHERE correlation_id <> ''),
               COUNT(DISTINCT correlation_id) FILTER (WHERE correlation_id <> ''),
               COUNT(DISTINCT correlation_id) FILTER (WHERE correlation_id <> '' AND timestamp = trail_first)
        FROM (
            SELECT service, correlation_id, timestamp,
                   MIN(timestamp) OVER (PARTITION BY correlation_id) AS trail_first
            FROM {table}
            WHERE timestamp >= %s AND {STAMPED_FROM_SQL} AND timestamp < %s AND type IN (%s, %s)
        ) AS counted
        GROUP BY service
        ORDER BY service
    """


def correlation_coverage(*, start: datetime, end: datetime) -> list[ServiceCoverage]:
    """Return each service's correlation coverage over [start, end), by service name."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [adapt(start), adapt(stamped_from(start)), adapt(end), *COUNTED_TYPES])
        rows = cursor.fetchall()
    return [
        ServiceCoverage(service, events, with_cid, trails, started)
        for service, events, with_cid, trails, started in rows
    ]
