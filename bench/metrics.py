"""Issue "Usage dashboards": p95 of /api/v1/metrics/series (30 days × hourly × 5 services) over 10,000,000 raw
events, beside the same answer computed by a GROUP BY on the raw events in the same run.

BENCH_METRICS_EVENTS raw events (20 event names, the busiest about a fifth of all, 5 services, 5,000 users
of whom a few are much busier, `duration_ms` and `n_results` numbers and a `region` string in properties,
30 days in time order) are generated inside PostgreSQL by INSERT … SELECT over generate_series from two
connections, with the table's secondary indexes and unique constraint dropped during the load and rebuilt
after it. Generating 10M rows in Python and COPYing them would take longer than PostgreSQL needs to store
them; the rows are the same either way.

Bench-only shortcut: running 10M events through the pipeline takes hours at its ~1-2k events/s, so the hour
and day rollups are built straight from the raw table by set-based SQL (INSERT … SELECT … GROUP BY), the
raw events are stored as aggregated (and indexed), and the minute rollups are left out (30 days × hourly
never reads them, and building them would about double the setup). Before measuring, the SQL-built rows of
one sample hour are checked against `deltas_for` (the function `aggregate_chunk` applies) on that hour's
events, and one day's rows against a GROUP BY on that day's raw events; the API's answer is then checked
against the raw GROUP BY over the whole range.
"""

import math
import secrets
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests

from . import common
from .common import Config, Gunicorn, Result, log
from .workload import EVENT_NAMES, REGIONS, SERVICES

DAYS = 30
# The sketches' standard error (1.04 / sqrt(2^14)), beside which the measured error is printed.
HLL_STANDARD_ERROR_PCT = 1.04 / math.sqrt(2**14) * 100
USERS = 5_000
EVENT = EVENT_NAMES[0]  # the busiest event: about 22% of all
STAGE = "prod"
LOADERS = 2  # connections generating rows at once (2 cores)
ROLLUP_TABLES = ("metrics_rollupcount", "metrics_rollupnumeric", "metrics_rollupsketch")
NUMERIC_PROPS = ("duration_ms", "n_results")
# statement_timeout bounds every statement; client_connection_check_interval ends a long INSERT … SELECT
# soon after this process is gone instead of letting it run to completion.
SESSION = (
    "SET TIME ZONE 'UTC'; SET work_mem = '512MB'; SET maintenance_work_mem = '1GB'; "
    "SET statement_timeout = '600s'; SET client_connection_check_interval = '1s'"
)


def _sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


# Every value drawn inside PostgreSQL; event and user indexes squared so that a few are much busier.
GENERATE = f"""
INSERT INTO ingest_rawevent (event_id, service, stage, type, event, timestamp, received_at, user_id,
    correlation_id, level, message, properties, notes, ingest_node, client_timestamp)
SELECT gen_random_uuid(),
    ({_sql_array(SERVICES)})[1 + floor(random() * {len(SERVICES)})::int],
    '{STAGE}', 'metric',
    ({_sql_array(EVENT_NAMES)})[1 + floor({len(EVENT_NAMES)} * random() ^ 2)::int],
    t, t + random() * interval '2 seconds',
    'user-' || floor({USERS} * random() ^ 2)::int,
    '', '', '',
    jsonb_build_object(
        'duration_ms',
        round(exp(3.5 + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::numeric, 2),
        'n_results', floor(random() * 201)::int,
        'region', ({_sql_array(REGIONS)})[1 + floor(random() * {len(REGIONS)})::int]),
    '[]', 'bench-node', t
FROM (
    SELECT %(start)s::timestamptz + (g + random()) * (%(span)s::interval / %(total)s) AS t
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
) AS moments
"""


def _number_columns(prop: str) -> str:
    """count, sum, min and max of one property, over the rows where it is a JSON number."""
    value, number = f"(properties->'{prop}')", f"jsonb_typeof(properties->'{prop}') = 'number'"
    parts = (
        ("count", "", "n"),
        ("sum", "::float8", "s"),
        ("min", "::float8", "lo"),
        ("max", "::float8", "hi"),
    )
    return ", ".join(
        f"{agg}({value}{cast}) FILTER (WHERE {number}) AS {prop}_{col}" for agg, cast, col in parts
    )


# One pass over the raw events for counts and the numbers (each number's count, sum, min, max per hour);
# hour and day rows of both tables come from it.
HOURLY = f"""
CREATE UNLOGGED TABLE bench_hourly AS
SELECT date_trunc('hour', timestamp) AS bucket_start, event, service, stage, count(*) AS n,
    {", ".join(_number_columns(p) for p in NUMERIC_PROPS)}
FROM ingest_rawevent
GROUP BY 1, 2, 3, 4
"""


def _rollups_from_hourly(granularity: str) -> list[str]:
    """Statements filling the RollupCount and RollupNumeric rows of one granularity from bench_hourly."""
    bucket = "bucket_start" if granularity == "hour" else "date_trunc('day', bucket_start)"
    numbers = " UNION ALL ".join(
        f"SELECT {bucket} AS b, event, service, stage, '{p}' AS prop, sum({p}_n) AS n, sum({p}_s) AS s, "
        f"min({p}_lo) AS lo, max({p}_hi) AS hi FROM bench_hourly WHERE {p}_n > 0 GROUP BY 1, 2, 3, 4"
        for p in NUMERIC_PROPS
    )
    return [
        "INSERT INTO metrics_rollupcount (bucket_start, granularity, event, service, stage, count) "
        f"SELECT {bucket}, '{granularity}', event, service, stage, sum(n) FROM bench_hourly "
        "GROUP BY 1, 3, 4, 5",
        "INSERT INTO metrics_rollupnumeric (bucket_start, granularity, event, service, stage, prop, count, "
        f"sum, min, max) SELECT b, '{granularity}', event, service, stage, prop, n, s, lo, hi "
        f"FROM ({numbers}) AS numbers",
    ]


def _sketches() -> list[str]:
    """Statements filling the hour user sketches from the raw events, then the day sketches from the hours'
    (a union of sketches is the sketch of the union, as the pipeline's upserts build them)."""
    from apps.metrics.models import HLL_PARAMS

    return [
        "INSERT INTO metrics_rollupsketch (bucket_start, granularity, event, service, stage, users) "
        "SELECT date_trunc('hour', timestamp), 'hour', event, service, stage, "
        f"hll_add_agg(hll_hash_text(user_id), {HLL_PARAMS}) FROM ingest_rawevent "
        "WHERE user_id <> '' GROUP BY 1, 3, 4, 5",
        "INSERT INTO metrics_rollupsketch (bucket_start, granularity, event, service, stage, users) "
        "SELECT date_trunc('day', bucket_start), 'day', event, service, stage, hll_union_agg(users) "
        "FROM metrics_rollupsketch WHERE granularity = 'hour' GROUP BY 1, 3, 4, 5",
    ]


# --- database helpers ---------------------------------------------------------------------------------------


def _connect() -> psycopg.Connection:
    conn = psycopg.connect(common.database_url(), autocommit=True)
    conn.execute(SESSION)
    return conn


def _sql(statement: str, params: Any = None) -> list[tuple]:
    with _connect() as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _in_parallel(jobs: list[list[tuple[str, Any]]]) -> None:
    """Run each list of statements on its own connection, all lists at once; raise the first error."""
    errors: list[BaseException] = []

    def work(statements: list[tuple[str, Any]]) -> None:
        try:
            with _connect() as conn:
                for statement, params in statements:
                    conn.execute(statement, params)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _cleanup(tables: Any) -> bool:
    """Empty the tables without waiting long for locks; return whether it was done."""
    try:
        _sql(f"SET lock_timeout = '5s'; TRUNCATE {', '.join(tables)}")
    except psycopg.Error as exc:
        log(f"metrics: could not empty {', '.join(tables)} ({exc}); the next run drops the database")
        return False
    return True


def _secondary_indexes(table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return the table's unique constraints and other non-primary indexes as (name, definition)."""
    constraints = _sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'u' ORDER BY conname",
        (table,),
    )
    indexes = _sql(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) ORDER BY i.relname",
        (table,),
    )
    # A partitioned table's index reads "ON ONLY <table>": run as such it would make an invalid index of the
    # parent alone, and the partitions would have none. Without ONLY, every partition gets its own.
    return constraints, [(name, definition.replace(" ON ONLY ", " ON ", 1)) for name, definition in indexes]


class IndexesDropped:
    """Drop the tables' secondary indexes and unique constraints for a bulk load; rebuild them on exit."""

    def __init__(self, tables: tuple[str, ...]) -> None:
        self.saved = {table: _secondary_indexes(table) for table in tables}

    def __enter__(self) -> "IndexesDropped":
        for table, (constraints, indexes) in self.saved.items():
            for name, _ in constraints:
                _sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            for name, _ in indexes:
                _sql(f"DROP INDEX {name}")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            # A failed or interrupted load: empty the tables (so the rebuild takes no time) unless statements
            # of the load still hold them; the next run drops the whole database anyway.
            if not _cleanup(self.saved):
                return
        jobs = []
        for table, (constraints, indexes) in self.saved.items():
            statements = [(f"ALTER TABLE {table} ADD CONSTRAINT {name} {d}", None) for name, d in constraints]
            statements += [(definition, None) for _, definition in indexes]
            jobs.append(statements)
        _in_parallel([job for job in jobs if job])


# --- building the data --------------------------------------------------------------------------------------


def load(total: int, start: datetime) -> dict[str, float]:
    """Generate `total` raw events over DAYS days from `start` and build their hour and day rollups.

    Return the seconds each step took."""
    timings: dict[str, float] = {}
    _sql(f"TRUNCATE ingest_rawevent, ingest_aggregationbacklog, {', '.join(ROLLUP_TABLES)}")
    with IndexesDropped(("ingest_rawevent", *ROLLUP_TABLES)):
        began = time.monotonic()
        bounds = [round(total * i / LOADERS) for i in range(LOADERS + 1)]
        params = {"start": start, "span": timedelta(days=DAYS), "total": total}
        _in_parallel(
            [
                [(GENERATE, {**params, "first": lo, "last": hi - 1})]
                for lo, hi in zip(bounds, bounds[1:], strict=False)
                if hi > lo
            ]
        )
        timings["generate"] = time.monotonic() - began

        began = time.monotonic()
        _sql("DROP TABLE IF EXISTS bench_hourly")
        _in_parallel(
            [
                [(HOURLY, None)] + [(s, None) for g in ("hour", "day") for s in _rollups_from_hourly(g)],
                [(statement, None) for statement in _sketches()],
            ]
        )
        _sql("DROP TABLE bench_hourly")
        timings["rollups"] = time.monotonic() - began
        began = time.monotonic()
    timings["indexes"] = time.monotonic() - began
    began = time.monotonic()
    _in_parallel([[(f"VACUUM ANALYZE {table}", None)] for table in ("ingest_rawevent", *ROLLUP_TABLES)])
    timings["vacuum"] = time.monotonic() - began
    return timings


def check_sample(start: datetime) -> None:
    """Check the SQL-built rollups: one hour against `deltas_for` (what aggregate_chunk adds), one day
    against a GROUP BY on that day's raw events."""
    from apps.ingest.models import RawEvent
    from apps.metrics.services import deltas_for
    from apps.pipeline.services import _AGGREGATE_FIELDS

    hour = start + timedelta(days=DAYS // 2, hours=13)
    events = RawEvent.objects.filter(timestamp__gte=hour, timestamp__lt=hour + timedelta(hours=1))
    deltas = deltas_for(events.only(*_AGGREGATE_FIELDS).iterator(chunk_size=5000))
    where = "granularity = 'hour' AND bucket_start = %s"
    counts = {
        (e, s, st): n
        for e, s, st, n in _sql(
            f"SELECT event, service, stage, count FROM metrics_rollupcount WHERE {where}", (hour,)
        )
    }
    expected = {key[2:]: n for key, n in deltas.counts.items() if key[1] == "hour"}
    if counts != expected or not counts:
        raise RuntimeError(f"metrics: hour rollup counts differ from deltas_for at {hour}")
    numerics = {
        (e, s, st, p): (n, total, lo, hi)
        for e, s, st, p, n, total, lo, hi in _sql(
            "SELECT event, service, stage, prop, count, sum, min, max FROM metrics_rollupnumeric "
            f"WHERE {where}",
            (hour,),
        )
    }
    expected_numerics = {
        (*key[2:], prop): stats for (key, prop), stats in deltas.numerics.items() if key[1] == "hour"
    }
    if numerics.keys() != expected_numerics.keys():
        raise RuntimeError(f"metrics: hour numeric rollups have other keys than deltas_for at {hour}")
    for key, (n, total, lo, hi) in expected_numerics.items():
        got = numerics[key]
        if got[0] != n or got[2] != lo or got[3] != hi or not math.isclose(got[1], total, rel_tol=1e-9):
            raise RuntimeError(
                f"metrics: hour numeric rollup {key} is {got}, deltas_for says {(n, total, lo, hi)}"
            )
    sketched = {
        (e, s, st): users
        for e, s, st, users in _sql(
            "SELECT event, service, stage, round(hll_cardinality(users)) FROM metrics_rollupsketch "
            f"WHERE {where}",
            (hour,),
        )
    }
    expected_users: dict[tuple, int] = defaultdict(int)
    for key, _user in deltas.users:
        if key[1] == "hour":
            expected_users[key[2:]] += 1
    # Each sketch of an hour holds at most a few hundred users: exact (explicit representation).
    if sketched != expected_users:
        raise RuntimeError(f"metrics: hour user sketches differ from deltas_for at {hour}")

    day = start + timedelta(days=DAYS // 2)
    mismatches = _sql(
        """
        WITH raw AS (
            SELECT event, service, stage, count(*) AS n,
                   count(DISTINCT user_id) FILTER (WHERE user_id <> '') AS u,
                   sum((properties->'duration_ms')::float8) AS s
            FROM ingest_rawevent WHERE timestamp >= %(day)s AND timestamp < %(day)s + interval '1 day'
            GROUP BY 1, 2, 3),
        rolled AS (
            SELECT c.event, c.service, c.stage, c.count AS n,
                   (SELECT round(hll_cardinality(u.users)) FROM metrics_rollupsketch u
                       WHERE u.granularity = 'day' AND u.bucket_start = c.bucket_start AND u.event = c.event
                       AND u.service = c.service AND u.stage = c.stage) AS u,
                   (SELECT sum FROM metrics_rollupnumeric m WHERE m.granularity = 'day'
                       AND m.bucket_start = c.bucket_start AND m.event = c.event AND m.service = c.service
                       AND m.stage = c.stage AND m.prop = 'duration_ms') AS s
            FROM metrics_rollupcount c WHERE c.granularity = 'day' AND c.bucket_start = %(day)s)
        SELECT event, service, stage, raw.n, rolled.n, raw.u, rolled.u, raw.s, rolled.s
        FROM raw FULL JOIN rolled USING (event, service, stage)
        WHERE raw.n IS DISTINCT FROM rolled.n OR abs(raw.u - rolled.u) > 0.02 * raw.u
           OR abs(raw.s - rolled.s) > 1e-6 * abs(raw.s) OR raw.s IS NULL OR rolled.s IS NULL
        """,
        {"day": day},
    )
    if mismatches:
        shown = "; ".join(
            f"{event}/{service}/{stage}: count {n} vs {rolled_n}, users {u} vs {rolled_u}, "
            f"duration_ms sum {total} vs {rolled_total}"
            for event, service, stage, n, rolled_n, u, rolled_u, total, rolled_total in mismatches[:5]
        )
        raise RuntimeError(
            f"metrics: {len(mismatches)} day rollup groups differ from a GROUP BY on {day:%Y-%m-%d} "
            f"(raw vs rollups): {shown}"
        )
    log(
        f"metrics: SQL-built rollups match deltas_for on {hour:%Y-%m-%d %H}h ({len(counts)} buckets) and a "
        f"GROUP BY on {day:%Y-%m-%d}"
    )


# --- measuring ----------------------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    """Return the nearest-rank p-th percentile of samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _product_token() -> str:
    from apps.accounts.roles import PRODUCT
    from apps.accounts.services import personal_token_create, user_create

    user = user_create(
        username="bench-product", role=PRODUCT, password=secrets.token_urlsafe(24), replace=True
    )
    return personal_token_create(user=user, label="bench metrics")[1]


Answer = dict[str, dict[datetime, float]]


def _api(session: requests.Session, url: str, params: dict[str, str]) -> tuple[float, Answer]:
    started = time.perf_counter()
    response = session.get(f"{url}/api/v1/metrics/series", params=params, timeout=120)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"/api/v1/metrics/series answered {response.status_code}: {response.text[:300]}")
    answer = {
        series["name"]: {datetime.fromisoformat(p["t"]): p["v"] for p in series["points"]}
        for series in response.json()["series"]
    }
    return elapsed * 1000, answer


def _raw(conn: psycopg.Connection, measure: str, start: datetime, end: datetime) -> tuple[float, Answer]:
    value = "count(*)" if measure == "count" else "count(DISTINCT user_id) FILTER (WHERE user_id <> '')"
    started = time.perf_counter()
    rows = conn.execute(
        f"SELECT date_trunc('hour', timestamp), service, {value} FROM ingest_rawevent "
        "WHERE event = %s AND timestamp >= %s AND timestamp < %s GROUP BY 1, 2",
        (EVENT, start, end),
    ).fetchall()
    elapsed = time.perf_counter() - started
    answer: Answer = defaultdict(dict)
    for bucket, service, number in rows:
        answer[service][bucket.astimezone(UTC)] = number
    return elapsed * 1000, answer


def _raw_weekly_users(conn: psycopg.Connection, start: datetime, end: datetime) -> Answer:
    """Return the exact users of EVENT per service and week (weeks start on Monday, UTC)."""
    rows = conn.execute(
        "SELECT date_trunc('week', timestamp), service, count(DISTINCT user_id) FILTER (WHERE user_id <> '')"
        " FROM ingest_rawevent WHERE event = %s AND timestamp >= %s AND timestamp < %s GROUP BY 1, 2",
        (EVENT, start, end),
    ).fetchall()
    answer: Answer = defaultdict(dict)
    for week, service, users in rows:
        answer[service][week.astimezone(UTC)] = users
    return answer


def _relative_error(api: Answer, raw: Answer) -> float:
    """Return the largest relative error of the API's points against the GROUP BY's (estimates)."""
    if set(api) != set(raw):
        raise RuntimeError(f"metrics unique users: API series {sorted(api)}, GROUP BY {sorted(raw)}")
    worst = 0.0
    for name, points in api.items():
        for moment, value in points.items():
            exact = raw[name].get(moment, 0)
            if exact == 0:
                if value:
                    raise RuntimeError(f"metrics unique users: {name} at {moment} is {value}, exactly 0")
                continue
            worst = max(worst, abs(value - exact) / exact)
    return worst


def _same(api: Answer, raw: Answer, what: str) -> None:
    """Check the API's series equal the GROUP BY's (every non-zero point, and each series' total)."""
    if set(api) != set(raw):
        raise RuntimeError(f"metrics {what}: API series {sorted(api)}, GROUP BY series {sorted(raw)}")
    for name, points in api.items():
        nonzero = {t: v for t, v in points.items() if v}
        if nonzero != raw[name] or sum(points.values()) != sum(raw[name].values()):
            raise RuntimeError(f"metrics {what}: series {name} differs from the GROUP BY")


def measure(config: Config, start: datetime) -> list[Result]:
    """Time the series API over HTTP and the raw GROUP BY through psycopg; return their figures."""
    end = start + timedelta(days=DAYS)
    params = {
        "event": EVENT,
        "interval": "hour",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "breakdown": "service",
    }
    token = _product_token()
    server = Gunicorn(workers=config.gunicorn_workers, env=common.portal_env())
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    times: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, float] = {}
    try:
        with _connect() as conn:
            for measure_name, runs, raw_runs in (
                ("count", config.metrics_requests, config.metrics_raw_runs),
                ("unique_users", config.metrics_raw_runs, config.metrics_raw_runs),
            ):
                query = {**params, "measure": measure_name}
                _, raw_answer = _raw(conn, measure_name, start, end)  # warm-up, and the answer to check
                # Warm-up: every gunicorn worker's first request loads what it loads lazily, and which worker
                # takes a connection is the kernel's choice, so a few requests per worker.
                for _ in range(3 * config.gunicorn_workers):
                    _, api_answer = _api(session, server.url, query)
                if measure_name == "unique_users":  # estimates from sketches: measure how far off
                    hourly = _relative_error(api_answer, raw_answer) * 100
                    # An hour's sketch of a service holds a few hundred users, exactly; a week's union of
                    # them thousands, as an estimate: that is where the error shows.
                    _, weekly_api = _api(session, server.url, {**query, "interval": "week"})
                    weekly = _relative_error(weekly_api, _raw_weekly_users(conn, start, end)) * 100
                    errors["unique_users"] = max(hourly, weekly)
                    log(
                        f"metrics: unique users: largest error of a point {hourly:.2f} % hourly, "
                        f"{weekly:.2f} % weekly"
                    )
                else:
                    _same(api_answer, raw_answer, measure_name)
                log(
                    f"metrics: {measure_name}: API and GROUP BY agree on {len(api_answer)} series × "
                    f"{len(next(iter(api_answer.values())))} hours; {runs} API requests, {raw_runs} GROUP BYs"
                )
                for _ in range(runs):
                    times[f"api_{measure_name}"].append(_api(session, server.url, query)[0])
                for _ in range(raw_runs):
                    times[f"raw_{measure_name}"].append(_raw(conn, measure_name, start, end)[0])
                api, raw = times[f"api_{measure_name}"], times[f"raw_{measure_name}"]
                log(
                    f"metrics: {measure_name}: API p50 {percentile(api, 50):,.1f} ms p95 "
                    f"{percentile(api, 95):,.1f} ms; GROUP BY p50 {percentile(raw, 50):,.1f} ms p95 "
                    f"{percentile(raw, 95):,.1f} ms"
                )
    finally:
        session.close()
        server.stop()
    p95 = {key: percentile(samples, 95) for key, samples in times.items()}
    return [
        Result(
            "metrics_series_p95_ms",
            p95["api_count"],
            "ms",
            p95["raw_count"],
            "raw_group_by_p95_ms",
            50,
            speedup=True,
        ),
        Result(
            "metrics_series_unique_users_p95_ms",
            p95["api_unique_users"],
            "ms",
            p95["raw_unique_users"],
            "raw_count_distinct_p95_ms",
            20,
            speedup=True,
        ),
        Result(
            "metrics_series_unique_users_error_pct",
            errors["unique_users"],
            "%",
            HLL_STANDARD_ERROR_PCT,
            "hll_standard_error_pct",
            2,
            goal_op="<=",
            goal_on="value",
        ),
    ]


def run(config: Config) -> list[Result]:
    """Load the raw events and their rollups, check them, then measure; return the figures."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=DAYS)
    log(f"metrics: generating {config.metrics_events:,} raw events over {DAYS} days and their rollups")
    global _raw_events_loaded
    try:
        timings = load(config.metrics_events, start)
        _raw_events_loaded = (start, config.metrics_events)
        log(
            "metrics: loaded in "
            + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in timings.items())
            + f" ({sum(timings.values()):.0f} s)"
        )
        check_sample(start)
        return measure(config, start)
    finally:
        # Leave a small database behind: the next run drops it anyway, but 10M rows need not wait for it.
        if config.share_raw_events and _raw_events_loaded:
            _cleanup(ROLLUP_TABLES)  # the analytics benchmark reads the raw events next, then empties them
        else:
            _raw_events_loaded = None
            _cleanup(("ingest_rawevent", *ROLLUP_TABLES))


_raw_events_loaded: tuple[datetime, int] | None = None  # (start, count) of the raw events `run` left


def raw_events_loaded() -> tuple[datetime, int] | None:
    """Return (start, count) of the raw events this benchmark generated and left in place, if it did."""
    return _raw_events_loaded
