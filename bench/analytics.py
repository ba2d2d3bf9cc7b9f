"""Issue 16, funnels and retention: p95 of /api/v1/metrics/funnel (3 steps, 30 days) and
/api/v1/metrics/retention (daily cohorts, 30 days) over the metrics benchmark's raw events, each beside the
same answer computed by a straightforward per-user Python pass over the rows fetched from PostgreSQL
(`user_id, event, timestamp` ordered by user and time), checked equal before timing.

The raw events are those `bench.metrics` generated, left in place when both run (Config.share_raw_events);
alone, this benchmark generates them the same way (the same INSERT … SELECT, BENCH_METRICS_EVENTS) without
the rollups: funnels and retention read raw events only. Funnel steps are
the three busiest event names (about 22 %, 9 % and 7 % of all events), so most of a 5,000-user month is
read; retention cohorts users by their first `login_succeeded` (about 3 %) and counts their
`search_made` (22 %) days.
"""

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg
import requests

from . import common, metrics
from .common import Config, Gunicorn, Result, env_int, log
from .workload import EVENT_NAMES

STEPS = EVENT_NAMES[:3]
WINDOW = timedelta(hours=1)
START_EVENT, RETURN_EVENT = "login_succeeded", "search_made"


def load(total: int, start: datetime) -> float:
    """Generate `total` raw events over metrics.DAYS days (metrics.GENERATE); return the seconds taken."""
    began = time.monotonic()
    metrics._sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    with metrics.IndexesDropped(("ingest_rawevent",)):
        bounds = [round(total * i / metrics.LOADERS) for i in range(metrics.LOADERS + 1)]
        params = {"start": start, "span": timedelta(days=metrics.DAYS), "total": total}
        metrics._in_parallel(
            [
                [(metrics.GENERATE, {**params, "first": lo, "last": hi - 1})]
                for lo, hi in zip(bounds, bounds[1:], strict=False)
                if hi > lo
            ]
        )
    metrics._sql("VACUUM ANALYZE ingest_rawevent")
    return time.monotonic() - began


def _rows(conn: psycopg.Connection, names: tuple[str, ...], start: datetime, end: datetime):
    """The raw rows a per-user pass needs, in user and time order, streamed from a server-side cursor."""
    with conn.cursor(name="bench_rows") as cursor:
        cursor.itersize = 20_000
        cursor.execute(
            "SELECT user_id, event, timestamp FROM ingest_rawevent WHERE event = ANY(%s) AND timestamp >= %s "
            "AND timestamp < %s AND user_id <> '' ORDER BY user_id, timestamp",
            (list(names), start, end),
        )
        yield from cursor


def python_funnel(conn: psycopg.Connection, start: datetime, end: datetime) -> list[tuple[int, float | None]]:
    """The baseline: fetch the rows, walk each user's events in Python (apps.metrics.funnel.funnel_paths)."""
    from apps.metrics.funnel import _counts_of_paths, funnel_paths

    with conn.transaction():
        paths = funnel_paths(_rows(conn, STEPS, start, end), STEPS, WINDOW)
    counts, medians = _counts_of_paths(paths.values(), len(STEPS), grouped=False).get(
        None, ([0] * len(STEPS), [None] * len(STEPS))
    )
    return [(c, None if m is None else round(m, 3)) for c, m in zip(counts, medians, strict=True)]


def python_retention(conn: psycopg.Connection, start: datetime, end: datetime) -> list[tuple[int, list[int]]]:
    """The baseline: fetch the rows, find each user's first start and return days in Python."""
    from apps.metrics import buckets
    from apps.metrics.retention import retention_cells, retention_users

    with conn.transaction():
        users = retention_users(
            _rows(conn, (START_EVENT, RETURN_EVENT), start, end), START_EVENT, RETURN_EVENT
        )
    cells = retention_cells(users, "day")
    days = buckets.starts(start, end, "day")
    return [
        (cells.get((day, -1), 0), [cells.get((day, k), 0) for k in range(len(days) - i)])
        for i, day in enumerate(days)
    ]


def _get(session: requests.Session, url: str, params: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    response = session.get(url, params=params, timeout=600)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def _funnel_answer(body: dict) -> list[tuple[int, float | None]]:
    return [(s["count"], s["median_seconds"]) for s in body["steps"]]


def _retention_answer(body: dict) -> list[tuple[int, list[int]]]:
    return [(c["size"], c["values"]) for c in body["cohorts"]]


def _timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    answer = fn(*args)
    return (time.perf_counter() - started) * 1000, answer


def _same_funnel(api: list, baseline: list) -> None:
    for (count, median), (b_count, b_median) in zip(api, baseline, strict=True):
        close = median == b_median or (
            median is not None and b_median is not None and abs(median - b_median) <= 0.001
        )
        if count != b_count or not close:
            raise RuntimeError(f"analytics: the funnel API and the Python pass disagree: {api} vs {baseline}")


def measure(config: Config, start: datetime) -> list[Result]:
    end = start + timedelta(days=metrics.DAYS)
    requests_timed = env_int("BENCH_ANALYTICS_REQUESTS", 10)
    baseline_runs = env_int("BENCH_ANALYTICS_BASELINE_RUNS", 1)
    token = metrics._product_token()
    server = Gunicorn(workers=config.gunicorn_workers, env=common.portal_env())
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    times: dict[str, list[float]] = defaultdict(list)
    span = {"from": start.isoformat(), "to": end.isoformat()}
    analyses = {
        "funnel": (
            f"{server.url}/api/v1/metrics/funnel",
            {**span, "steps": ",".join(STEPS), "window": str(int(WINDOW.total_seconds()))},
            _funnel_answer,
            python_funnel,
            _same_funnel,
        ),
        "retention": (
            f"{server.url}/api/v1/metrics/retention",
            {**span, "start_event": START_EVENT, "return_event": RETURN_EVENT, "interval": "day"},
            _retention_answer,
            python_retention,
            None,
        ),
    }
    try:
        with psycopg.connect(common.database_url()) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            for name, (url, params, read, baseline, same) in analyses.items():
                _, body = _get(session, url, params)  # warm-up
                api_answer = read(body)
                baseline_ms, baseline_answer = _timed(baseline, conn, start, end)
                if same:
                    same(api_answer, baseline_answer)
                elif api_answer != baseline_answer:
                    raise RuntimeError(f"analytics: the {name} API and the Python pass disagree")
                log(f"analytics: {name}: the API and the Python pass agree ({str(api_answer)[:100]}…)")
                for _ in range(requests_timed):
                    times[f"api_{name}"].append(_get(session, url, params)[0])
                times[f"python_{name}"].append(baseline_ms)
                for _ in range(baseline_runs - 1):
                    times[f"python_{name}"].append(_timed(baseline, conn, start, end)[0])
                api, python = times[f"api_{name}"], times[f"python_{name}"]
                log(
                    f"analytics: {name}: API p50 {metrics.percentile(api, 50):,.0f} ms p95 "
                    f"{metrics.percentile(api, 95):,.0f} ms; Python pass p50 "
                    f"{metrics.percentile(python, 50):,.0f} ms p95 {metrics.percentile(python, 95):,.0f} ms"
                )
    finally:
        session.close()
        server.stop()
    p95 = {key: metrics.percentile(samples, 95) for key, samples in times.items()}
    return [
        Result(
            "funnel_p95_ms",
            p95["api_funnel"],
            "ms",
            p95["python_funnel"],
            "python_per_user_p95_ms",
            10,
            speedup=True,
        ),
        Result(
            "retention_p95_ms",
            p95["api_retention"],
            "ms",
            p95["python_retention"],
            "python_per_user_p95_ms",
            10,
            speedup=True,
        ),
    ]


def run(config: Config) -> list[Result]:
    """Generate the raw events, then measure; return the figures."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=metrics.DAYS)
    try:
        if metrics.raw_events_loaded() == (start, config.metrics_events):
            log(
                f"analytics: reading the {config.metrics_events:,} raw events the metrics benchmark generated"
            )
        else:
            log(f"analytics: generating {config.metrics_events:,} raw events over {metrics.DAYS} days")
            log(f"analytics: loaded in {load(config.metrics_events, start):.0f} s")
        return measure(config, start)
    finally:
        metrics._cleanup(("ingest_rawevent",))
