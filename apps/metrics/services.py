"""Writes for rollups: add a chunk of events' deltas with one upsert per table (idempotency is the caller's).

The caller (the pipeline) runs this in the same transaction that marks the events aggregated, so a chunk's
deltas are added exactly once even when a worker dies half-way.
"""

import functools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from apps.common.bulk import bulk_insert
from apps.common.dbtypes import id_array
from apps.common.jsonfields import MAX_SUMMABLE
from apps.ingest.models import AGGREGATED, condition_sql

from . import buckets
from .models import (
    DETAIL_GRANULARITIES,
    GRANULARITIES,
    HLL_PARAMS,
    EventName,
    RollupCount,
    RollupNumeric,
    RollupUser,
)

BucketKey = tuple[datetime, str, str, str, str]  # (bucket_start, granularity, event, service, stage)


# A property name longer than a rollup's `prop` column is not rolled up (the raw event keeps it).
MAX_PROP_NAME = 200


def numeric_properties(properties: dict[str, Any]) -> dict[str, float]:
    """Return the top-level properties that are finite numbers of a summable size (booleans are not numbers
    here); the raw event keeps every value."""
    numbers = {}
    for key, value in properties.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or len(key) > MAX_PROP_NAME:
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
            key = (buckets.floor(ev.timestamp, granularity), granularity, ev.event, ev.service, ev.stage)
            deltas.counts[key] += 1
            if granularity not in DETAIL_GRANULARITIES:
                continue
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
    names = sorted({key[2] for key in deltas.counts})
    bulk_insert(EventName, ["name"], [(name,) for name in names], conflict=["name"])


# --- PostgreSQL: rollups from set-based SQL over the claimed events ---------------------------------------


def _one_line(sql: str) -> str:
    """Return a statement on one line (as pg_stat_activity and logs show it)."""
    return " ".join(sql.split())


# One statement adds a chunk to every rollup table (numbers and users by hour and day only, as
# DETAIL_GRANULARITIES says). `chunk` (the events, read once) gives `hours` (each event's hour bucket, in
# UTC) and `numbers` (their summable numbers). Counts come from the events; sums and user sketches by hour
# from the events, and by day from the hours (a day's sum is the sum of its hours', its sketch the union of
# theirs), so each upsert aggregates the chunk once, not once per granularity. The upserts go in key order
# (so concurrent workers lock buckets in one order); the statement answers only the chunk's size. The
# numbers are those numeric_properties() keeps: top-level JSON numbers (not booleans) of a summable size,
# under a name that fits a rollup's prop column. The chunk's event names go into the catalogue of names (a
# name already there is neither written nor locked; an anti-join leaves those out at half the cost of a
# conflict check each), and its users into its days' sketches of every event (hashed again: the same sketch
# as the union of the day's RollupSketch rows, and 1 ms for a 2,000-event chunk against 40 for a union of
# its ~1,600 small hour sketches). PostgreSQL runs the upserts, which nothing reads, last listed first:
# counts, sums, sketches, names, days' sketches, the order in which a purge updates a bucket's rows (else a
# claim of a bucket a purge holds deadlocks with it); the day sketches, the one row every chunk of the day
# updates, run last, so that row stays locked only from its upsert to the commit.
_UTC_DAY = "date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
_ROLLUP_CTES = f"""
    hours AS MATERIALIZED (
        SELECT c.id, c.event, c.service, c.stage, c.user_id,
            date_trunc('hour', c."timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour_start
        FROM chunk c
    ), numbers AS MATERIALIZED (
        SELECT c.id, p.key, p.value::numeric::float8 AS n
        FROM chunk c CROSS JOIN LATERAL jsonb_each(
            CASE WHEN jsonb_typeof(c.properties) = 'object' THEN c.properties ELSE '{{}}' END
        ) AS p
        WHERE jsonb_typeof(p.value) = 'number' AND abs(p.value::numeric) <= %(max_summable)s
            AND length(p.key) <= %(max_prop)s
    ), day_sketches AS (
        INSERT INTO metrics_daysketch AS t (bucket_start, users)
        SELECT {_UTC_DAY}, hll_add_agg(hll_hash_text(user_id), {HLL_PARAMS})
        FROM hours WHERE user_id <> '' GROUP BY 1 ORDER BY 1
        ON CONFLICT (bucket_start) DO UPDATE SET users = hll_union(t.users, excluded.users)
    ), names AS (
        INSERT INTO metrics_eventname (name)
        SELECT DISTINCT event FROM chunk c
        WHERE NOT EXISTS (SELECT FROM metrics_eventname n WHERE n.name = c.event)
        ORDER BY 1 ON CONFLICT DO NOTHING
    ), hour_users AS MATERIALIZED (
        SELECT event, hour_start, service, stage, hll_add_agg(hll_hash_text(user_id), {HLL_PARAMS}) AS users
        FROM hours WHERE user_id <> '' GROUP BY 1, 2, 3, 4
    ), sketches AS (
        INSERT INTO metrics_rollupsketch AS t (granularity, event, bucket_start, service, stage, users)
        SELECT * FROM (
            SELECT 'hour', event, hour_start, service, stage, users FROM hour_users
            UNION ALL
            SELECT 'day', event, {_UTC_DAY}, service, stage, hll_union_agg(users)
            FROM hour_users GROUP BY 2, 3, 4, 5
        ) AS k (granularity, event, bucket_start, service, stage, users)
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (granularity, event, bucket_start, service, stage)
        DO UPDATE SET users = hll_union(t.users, excluded.users)
    ), hour_numbers AS MATERIALIZED (
        SELECT h.event, h.hour_start, h.service, h.stage, n.key,
            count(*) AS count, sum(n.n) AS sum, min(n.n) AS min, max(n.n) AS max
        FROM hours h JOIN numbers n ON n.id = h.id
        GROUP BY 1, 2, 3, 4, 5
    ), sums AS (
        INSERT INTO metrics_rollupnumeric AS t
            (granularity, event, bucket_start, service, stage, prop, count, sum, min, max)
        SELECT * FROM (
            SELECT 'hour', event, hour_start, service, stage, key, count, sum, min, max FROM hour_numbers
            UNION ALL
            SELECT 'day', event, {_UTC_DAY}, service, stage, key, sum(count), sum(sum), min(min), max(max)
            FROM hour_numbers GROUP BY 2, 3, 4, 5, 6
        ) AS k (granularity, event, bucket_start, service, stage, prop, count, sum, min, max)
        ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (granularity, event, bucket_start, service, stage, prop)
        DO UPDATE SET count = t.count + excluded.count, sum = t.sum + excluded.sum,
            min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max)
    ), counts AS (
        INSERT INTO metrics_rollupcount AS t (granularity, event, bucket_start, service, stage, count)
        SELECT * FROM (
            SELECT 'minute', event, date_trunc('minute', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                service, stage, count(*)
            FROM chunk GROUP BY 2, 3, 4, 5
            UNION ALL
            SELECT 'hour', event, hour_start, service, stage, count(*) FROM hours GROUP BY 2, 3, 4, 5
            UNION ALL
            SELECT 'day', event, {_UTC_DAY}, service, stage, count(*) FROM hours GROUP BY 2, 3, 4, 5
        ) AS k (granularity, event, bucket_start, service, stage, count)
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (granularity, event, bucket_start, service, stage)
        DO UPDATE SET count = t.count + excluded.count
    )
    SELECT count(*) FROM chunk"""
# What the rollup statement reads of each event of its `chunk`.
ROLLUP_CHUNK_COLUMNS = 'id, event, service, stage, "timestamp", user_id, properties'


def rollups_statement(chunk: str, *also: str, before: str | None = None) -> str:
    """Return one statement that adds the events `chunk` yields to every rollup table and answers their
    count: `chunk` is a SELECT, or an UPDATE … RETURNING, of at least ROLLUP_CHUNK_COLUMNS. `also` are
    more CTEs (`name AS (…)`) run in the same statement, which may read `chunk`; `before` is one that
    `chunk` may read. Its parameters are `rollup_params()` and those of the CTEs (PostgreSQL only)."""
    ctes = "".join(f"{cte}, " for cte in also)
    first = f"{before}, " if before else ""
    return _one_line(f"WITH {first}chunk AS MATERIALIZED ({chunk}), {ctes}{_ROLLUP_CTES}")


def rollup_params() -> dict[str, Any]:
    """The parameters of a rollup statement's own CTEs (see rollups_statement)."""
    return {"max_summable": MAX_SUMMABLE, "max_prop": MAX_PROP_NAME}


# Adds the events of a list of ids (no claim): what the contract tests and the bench compare.
_ADD = rollups_statement(
    f"SELECT {ROLLUP_CHUNK_COLUMNS} FROM ingest_rawevent WHERE id = ANY(%(ids)s::bigint[])"
)


def rollups_add_sql(*, event_ids: list[int]) -> None:
    """Add the events' counts, numbers and users to the rollups in one statement (PostgreSQL).

    Equal to rollups_apply of deltas_for, but for unique users, which go into sketches instead of RollupUser
    rows. Idempotency is the caller's: the pipeline claims and adds in one statement of its own, built with
    rollups_statement from the same CTEs.
    """
    with connection.cursor() as cursor:
        cursor.execute(_ADD, {"ids": id_array(event_ids), **rollup_params()})


_SKETCH_KEYS = """
    WITH keys AS (
        SELECT * FROM unnest(
            %(granularities)s::text[], %(events)s::text[], %(starts)s::timestamptz[],
            %(services)s::text[], %(stages)s::text[]
        ) AS k(granularity, event, bucket_start, service, stage)
    )"""
_DROP_SKETCHES = _one_line(f"""{_SKETCH_KEYS}
    DELETE FROM metrics_rollupsketch t USING keys k
    WHERE (t.granularity, t.event, t.bucket_start, t.service, t.stage)
        = (k.granularity, k.event, k.bucket_start, k.service, k.stage)""")


@functools.cache
def _build_sketches_sql() -> str:
    return _one_line(f"""{_SKETCH_KEYS}
    INSERT INTO metrics_rollupsketch (granularity, event, bucket_start, service, stage, users)
    SELECT k.granularity, k.event, k.bucket_start, k.service, k.stage,
        hll_add_agg(hll_hash_text(ingest_rawevent.user_id), {HLL_PARAMS})
    FROM keys k JOIN ingest_rawevent
        ON ingest_rawevent.event = k.event AND ingest_rawevent.service = k.service
        AND ingest_rawevent.stage = k.stage
        AND ingest_rawevent."timestamp" >= k.bucket_start
        AND ingest_rawevent."timestamp" < k.bucket_start + ('1 ' || k.granularity)::interval
    WHERE ({condition_sql(AGGREGATED)}) AND ingest_rawevent.user_id <> ''
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5""")


# A day's sketch of every event is the union of its RollupSketch day rows: rebuilt from them, it forgets
# whom they forgot.
_DROP_DAY_SKETCHES = "DELETE FROM metrics_daysketch WHERE bucket_start = ANY(%(days)s::timestamptz[])"
_BUILD_DAY_SKETCHES = _one_line("""
    INSERT INTO metrics_daysketch (bucket_start, users)
    SELECT bucket_start, hll_union_agg(users) FROM metrics_rollupsketch
    WHERE granularity = 'day' AND bucket_start = ANY(%(days)s::timestamptz[])
    GROUP BY 1 ORDER BY 1""")


def sketches_rebuild(*, keys: Iterable[BucketKey]) -> int:
    """Rebuild the user sketches of some buckets from their aggregated raw events (PostgreSQL), and the
    sketches of every event of the days among them; a sketch cannot forget a user, so a purge rebuilds
    the buckets it touched. Return how many buckets (days of every event not included)."""
    keys = sorted(set(keys))
    if not keys:
        return 0
    starts, granularities, events, services, stages = (list(column) for column in zip(*keys, strict=True))
    params = {
        "granularities": granularities,
        "events": events,
        "starts": starts,
        "services": services,
        "stages": stages,
    }
    days = {"days": sorted({key[0] for key in keys if key[1] == "day"})}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DROP_SKETCHES, params)
        cursor.execute(_build_sketches_sql(), params)
        cursor.execute(_DROP_DAY_SKETCHES, days)
        cursor.execute(_BUILD_DAY_SKETCHES, days)
    return len(keys)


def event_names_prune(*, names: Iterable[str] | None = None) -> int:
    """Take out of the catalogue of event names those (of `names`, or of all) that no day count above zero
    holds any more: after a rollup reset deleted their rows, or a purge took their last events out of the
    counts (a name can be all that is left of a purged user). Return how many."""
    counted = RollupCount.objects.filter(granularity="day", event=OuterRef("name"), count__gt=0)
    gone = EventName.objects.filter(~Exists(counted))
    if names is not None:
        names = sorted(set(names))
        if not names:
            return 0
        gone = gone.filter(name__in=names)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Waits for the claims writing rollups to commit and holds new ones until this commits (a claim
            # locks the table when it starts). Else a name a claim found in place, and is counting again,
            # could go while its counts are not yet committed. Not to be called while holding rollup rows a
            # claim may wait for (a purge's updated counts): the claim would wait for them, this for it.
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {EventName._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        return gone.delete()[0]
