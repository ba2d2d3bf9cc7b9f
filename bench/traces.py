"""Issue "Trace viewer": p50/p95 of GET /api/v1/traces/<cid> over 1,000,000 indexed events, beside the raw
Elasticsearch term query for the same correlation IDs in the same run.

A generator writes BENCH_TRACE_EVENTS documents (shaped like `document_for` makes them) straight into the
bench prefix's daily indices, made by the app's own `index_template_ensure()`: about one request (correlation
ID) per 10 events, 1-30 events each across 1-4 of 5 services, 20,000 users (a few much busier than the
rest), 7 days, a third of them log lines with messages, properties like the services send. The trace API
reads only Elasticsearch, so no raw rows go to PostgreSQL; the bench database holds the support user and
the personal token the API needs, and the audit entries every call writes. During the load the indices do
not refresh and their translog is asynchronous; afterwards they get the template's settings back, are
refreshed and force-merged to one segment each (what a rollover policy does to past days).

One client sends sequential requests over loopback HTTP to gunicorn; the baseline is the same query
(`term` on correlation_id, the trail's sort and size) sent with the Python client. Both sides go through the
same HTTP library, urllib3 (the Elasticsearch client's transport), each with one pooled connection: with
`requests` on the API side, its own per-call work (~1 ms here: merging settings, looking up proxies) was
timed as the portal's. Both are warmed up on
other IDs first and then alternate ID by ID, so neither profits from caches the other filled.
"""

import math
import multiprocessing
import os
import queue
import random
import secrets
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3

from . import common
from .common import Config, Gunicorn, Result, log
from .workload import EVENT_NAMES, REGIONS, SERVICES

USERS = 20_000
SPAN = timedelta(days=7)
LOADERS = 2  # generator processes: with Elasticsearch on the same 2 cores, two keep both busy
CHUNK = 2_000  # documents per bulk request
WARM_UP = 100  # requests (and raw queries) on other IDs before the clock runs
LEVELS = (("info", 70), ("warning", 15), ("error", 10), ("debug", 5))
PATHS = ("/api/forecast", "/api/tiles", "/api/planes", "/api/ships", "/api/search", "/api/alerts")
MESSAGES = (
    "GET {path} {status} in {ms} ms",
    "POST {path} {status} in {ms} ms",
    "cache miss for {path}, fetched upstream in {ms} ms",
    "retrying {path} after upstream timeout ({ms} ms)",
    "user quota checked for {path}: {status}",
)


# --- the generator (runs in spawned processes: no Django) ---------------------------------------------------


def _requests_of(rng: random.Random, total: int, seq_start: int, end: datetime, prefix: str):
    """Yield (correlation_id, user_id, bulk actions) for requests until `total` documents were made."""
    level_names = [name for name, _ in LEVELS]
    level_weights = [weight for _, weight in LEVELS]
    made, seq = 0, seq_start
    span_us = int(SPAN.total_seconds() * 1e6)
    while made < total:
        cid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        user = f"user-{int(USERS * rng.random() ** 2)}"  # skewed: low numbers are the busy users
        count = min(30, 1 + int(rng.expovariate(1 / 9)), total - made)
        route = rng.sample(SERVICES, rng.choice((1, 2, 2, 3, 3, 4)))
        moment = end - timedelta(microseconds=rng.randrange(span_us))
        actions = []
        for i in range(count):
            moment += timedelta(microseconds=int(rng.expovariate(1 / 150_000)))
            service = route[i * len(route) // count]
            props: dict[str, Any] = {
                "duration_ms": round(rng.lognormvariate(3.5, 0.8), 2),
                "region": rng.choice(REGIONS),
            }
            if rng.random() < 0.35:
                kind, name = "log", "log"
                level = rng.choices(level_names, level_weights)[0]
                path = rng.choice(PATHS)
                status = 500 if level == "error" else rng.choice((200, 200, 200, 201, 304, 404))
                props.update(path=path, status=status)
                message = rng.choice(MESSAGES).format(path=path, status=status, ms=int(props["duration_ms"]))
            else:
                kind, name, level, message = "metric", rng.choice(EVENT_NAMES), None, ""
                props["n_results"] = rng.randint(0, 200)
            event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            seq += 1
            actions.append(
                {
                    "_index": f"{prefix}-{moment:%Y.%m.%d}",
                    "_id": f"{service}:{event_id}",
                    "_source": {
                        "event_id": event_id,
                        "type": kind,
                        "event": name,
                        "service": service,
                        "stage": "prod",
                        "level": level,
                        "user_id": user,
                        "correlation_id": cid,
                        "message": message,
                        "timestamp": moment.isoformat(),
                        "received_at": (moment + timedelta(milliseconds=rng.randint(5, 2000))).isoformat(),
                        "properties": props,
                        "notes": [],
                        "ingest_node": "bench-node",
                        "seq": seq,
                    },
                }
            )
        made += count
        yield cid, user, actions


def _loader(job: dict[str, Any], results: Any) -> None:
    """One generator process: make its share of the documents and bulk-index them; report what it made."""
    outcome: dict[str, Any] = {"index": job["index"], "requests": {}, "errors": []}
    try:
        from elasticsearch import Elasticsearch, helpers

        client = Elasticsearch(job["url"], request_timeout=120)
        rng = random.Random(job["seed"])
        made: dict[str, tuple[int, str]] = {}

        def actions():
            for cid, user, docs in _requests_of(
                rng, job["count"], job["seq_start"], datetime.fromisoformat(job["end"]), job["prefix"]
            ):
                made[cid] = (len(docs), user)
                yield from docs

        indexed = 0
        for ok, info in helpers.streaming_bulk(
            client, actions(), chunk_size=CHUNK, max_chunk_bytes=20 * 1024 * 1024, raise_on_error=False
        ):
            if ok:
                indexed += 1
            elif len(outcome["errors"]) < 3:
                outcome["errors"].append(str(info)[:500])
        client.close()
        if indexed != job["count"]:
            outcome["errors"].append(f"indexed {indexed} of {job['count']} documents")
        outcome["requests"] = made
    except Exception as exc:  # reported to the parent, which fails the benchmark
        outcome["errors"].append(f"{type(exc).__name__}: {exc}")
    results.put(outcome)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def load(total: int, *, end: datetime, timeout: float) -> dict[str, tuple[int, str]]:
    """Index `total` generated documents from LOADERS processes; return {correlation_id: (events, user)}."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    processes, seq_start = [], 0
    for index, count in enumerate(_split(total, LOADERS)):
        job = {
            "index": index,
            "count": count,
            "seed": 5000 + index,
            "seq_start": seq_start,
            "end": end.isoformat(),
            "prefix": common.BENCH_INDEX_PREFIX,
            "url": os.environ["ELASTICSEARCH_URL"],
        }
        seq_start += count
        processes.append(ctx.Process(target=_loader, args=(job, results), daemon=True))
    outcomes: list[dict[str, Any]] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + timeout
        while len(outcomes) < len(processes):
            try:
                outcomes.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise RuntimeError(f"traces: the generator did not finish within {timeout}s") from None
        for process in processes:
            process.join(timeout=10)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    errors = [error for outcome in outcomes for error in outcome["errors"]]
    if errors:
        raise RuntimeError(f"traces: generating the documents failed: {errors[:3]}")
    made: dict[str, tuple[int, str]] = {}
    for outcome in outcomes:
        made.update(outcome["requests"])
    return made


# --- Elasticsearch settings around the load -----------------------------------------------------------------


DAILY = f"{common.BENCH_INDEX_PREFIX}-*"


def prepare_indices(es: Any, end: datetime) -> None:
    """Make the template (the app's own) and the week's daily indices, tuned for a bulk load."""
    from apps.traces.search.elasticsearch import index_template_ensure

    index_template_ensure()
    first = (end - SPAN).date()
    for n in range((end.date() - first).days + 1):
        name = f"{common.BENCH_INDEX_PREFIX}-{first + timedelta(days=n):%Y.%m.%d}"
        es.options(ignore_status=400).indices.create(index=name)  # 400: it exists already
    es.indices.put_settings(
        index=DAILY, settings={"index": {"refresh_interval": "-1", "translog": {"durability": "async"}}}
    )


def finish_indices(es: Any) -> None:
    """Give the indices the template's settings back, refresh them and merge each to one segment."""
    es.indices.put_settings(
        index=DAILY, settings={"index": {"refresh_interval": "1s", "translog": {"durability": "request"}}}
    )
    es.indices.refresh(index=DAILY)
    es.options(request_timeout=600).indices.forcemerge(index=DAILY, max_num_segments=1)
    es.indices.refresh(index=DAILY)


# --- measuring ----------------------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    """Return the nearest-rank p-th percentile of samples."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _support_token() -> str:
    from apps.accounts.roles import SUPPORT
    from apps.accounts.services import personal_token_create, user_create

    user = user_create(
        username="bench-support", role=SUPPORT, password=secrets.token_urlsafe(24), replace=True
    )
    return personal_token_create(user=user, label="bench traces")[1]


class Api:
    """The portal's read API over one pooled loopback connection, as the support user."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1, timeout=30.0, retries=False)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[float, dict[str, Any]]:
        """Return the call's time in ms and its JSON body; raise unless it answered 200."""
        started = time.perf_counter()
        response = self.pool.request("GET", path, headers=self.headers)
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {response.data[:300]!r}")
        return elapsed * 1000, response.json()

    def close(self) -> None:
        self.pool.close()


def _api_trail(api: Api, cid: str, expected: int) -> float:
    elapsed, body = api.get(f"/api/v1/traces/{cid}")
    if len(body["events"]) != expected:
        raise RuntimeError(f"trace {cid}: {len(body['events'])} events, {expected} expected")
    return elapsed


def _raw_trail(es: Any, cid: str, expected: int) -> float:
    from apps.traces.search.base import TRAIL_LIMIT

    started = time.perf_counter()
    answer = es.search(
        index=common.BENCH_INDEX_PREFIX,
        query={"term": {"correlation_id": cid}},
        sort=["timestamp", "received_at", "seq"],
        size=TRAIL_LIMIT,
        track_total_hits=False,
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    elapsed = time.perf_counter() - started
    if len(answer["hits"]["hits"]) != expected:
        raise RuntimeError(f"raw trail {cid}: {len(answer['hits']['hits'])} hits, {expected} expected")
    return elapsed * 1000


def _api_user(api: Api, user: str, expected: int) -> float:
    elapsed, body = api.get(f"/api/v1/users/{user}/requests")
    if body["total"] != expected:
        raise RuntimeError(f"user {user}: {body['total']} requests, {expected} expected")
    return elapsed


def _raw_user(es: Any, user: str, expected: int, per_page: int = 50) -> float:
    """The two queries the Elasticsearch backend sends for one page of a user's requests, sent directly."""
    common_params = {"index": common.BENCH_INDEX_PREFIX, "ignore_unavailable": True, "allow_no_indices": True}
    started = time.perf_counter()
    page = es.search(
        **common_params,
        query={"bool": {"filter": [{"term": {"user_id": user}}, {"exists": {"field": "correlation_id"}}]}},
        sort=[{"timestamp": "desc"}, {"correlation_id": "asc"}],
        collapse={"field": "correlation_id"},
        from_=0,
        size=per_page,
        track_total_hits=False,
        source=["correlation_id"],
        aggs={"requests": {"cardinality": {"field": "correlation_id", "precision_threshold": 40000}}},
    )
    cids = [hit["_source"]["correlation_id"] for hit in page["hits"]["hits"]]
    per_request = {
        name: {
            "top_hits": {
                "size": 1,
                "sort": [{"timestamp": {"order": order, "numeric_type": "date_nanos"}}],
                "_source": False,
            }
        }
        for name, order in (("first", "asc"), ("last", "desc"))
    } | {
        "services": {"terms": {"field": "service", "size": 100, "order": {"_key": "asc"}}},
        "levels": {"terms": {"field": "level", "size": 10}},
    }
    summaries = es.search(
        **common_params,
        query={"bool": {"filter": [{"terms": {"correlation_id": cids}}]}},
        size=0,
        track_total_hits=False,
        aggs={"cid": {"terms": {"field": "correlation_id", "size": len(cids)}, "aggs": per_request}},
    )
    elapsed = time.perf_counter() - started
    total = int(page["aggregations"]["requests"]["value"])
    if total != expected or len(summaries["aggregations"]["cid"]["buckets"]) != len(cids):
        raise RuntimeError(f"raw user {user}: {total} requests, {expected} expected")
    return elapsed * 1000


def _server_times(access_log: Any, path_prefix: str) -> list[float]:
    """Return the milliseconds gunicorn's worker spent on each answered request under `path_prefix`, in the
    order they were made (one client, one request at a time): its access log's `%(U)s %(s)s %(D)s`."""
    times = []
    for line in access_log.read_text().splitlines():
        path, status, micros = line.split()
        if path.startswith(path_prefix):
            if status != "200":
                raise RuntimeError(f"traces: gunicorn logged {line!r}")
            times.append(int(micros) / 1000)
    return times


def _check_audited(*, calls: int) -> None:
    """Fail the run unless every API call left its audit entry (the speed must not come from skipping it)."""
    from apps.accounts.models import AuditEntry

    audited = AuditEntry.objects.filter(actor_name="bench-support", via="api").count()
    if audited != calls:
        raise RuntimeError(f"traces: {audited} audit entries for {calls} API calls")
    log(f"traces: {audited:,} audit entries for {calls:,} API calls")


def _alternate(pairs: list[tuple[Any, Any]]) -> tuple[list[float], list[float]]:
    """Run each (api call, raw call) pair in turn; return the API's and the raw query's times."""
    api, raw = [], []
    for api_call, raw_call in pairs:
        api.append(api_call())
        raw.append(raw_call())
    return api, raw


def run(config: Config) -> list[Result]:
    """Generate and index the events, then measure the trace and user-requests APIs beside raw queries."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch(os.environ["ELASTICSEARCH_URL"], request_timeout=60)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    try:
        prepare_indices(es, end)
        log(f"traces: generating and indexing {config.trace_events:,} documents from {LOADERS} processes")
        started = time.monotonic()
        made = load(config.trace_events, end=end, timeout=config.phase_timeout * 3)
        loaded = time.monotonic()
        finish_indices(es)
        merged = time.monotonic()
        indexed = es.count(index=common.BENCH_INDEX_PREFIX)["count"]
        if indexed != config.trace_events:
            raise RuntimeError(f"traces: {indexed} documents searchable, {config.trace_events} made")
        log(
            f"traces: {indexed:,} documents, {len(made):,} correlation IDs: generated and indexed in "
            f"{loaded - started:.0f} s ({indexed / (loaded - started):,.0f} docs/s), refreshed and "
            f"force-merged in {merged - loaded:.0f} s"
        )
        results = measure(config, es, made)
    finally:
        es.close()
        common.delete_indices(template=False)
    return results


def measure(config: Config, es: Any, made: dict[str, tuple[int, str]]) -> list[Result]:
    """Time the APIs over HTTP and the raw queries with the Python client, alternating; return figures."""
    rng = random.Random(77)
    cids = rng.sample(sorted(made), min(len(made), config.trace_samples + WARM_UP))
    warm, sample = cids[:WARM_UP], cids[WARM_UP:]
    per_user = Counter(user for _, user in made.values())
    users = rng.sample(sorted(per_user), min(len(per_user), config.trace_users + WARM_UP // 2))
    warm_users, sample_users = users[: WARM_UP // 2], users[WARM_UP // 2 :]
    token = _support_token()
    access_log = common.LOG_DIR / "traces-access.log"
    access_log.unlink(missing_ok=True)  # gunicorn appends
    server = Gunicorn(workers=config.gunicorn_workers, env=common.portal_env(), access_log=access_log)
    portal = Api(server.url, token)
    try:

        def trail_pairs(ids: list[str]) -> list[tuple[Any, Any]]:
            return [
                (
                    lambda c=cid: _api_trail(portal, c, made[c][0]),
                    lambda c=cid: _raw_trail(es, c, made[c][0]),
                )
                for cid in ids
            ]

        def user_pairs(ids: list[str]) -> list[tuple[Any, Any]]:
            return [
                (
                    lambda u=user: _api_user(portal, u, per_user[u]),
                    lambda u=user: _raw_user(es, u, per_user[u]),
                )
                for user in ids
            ]

        log(f"traces: warming up on {len(warm)} other IDs, then {len(sample)} trails, API and raw in turn")
        _alternate(trail_pairs(warm))
        api, raw = _alternate(trail_pairs(sample))
        log(
            f"traces: API p50 {percentile(api, 50):.1f} ms p95 {percentile(api, 95):.1f} ms; raw term query "
            f"p50 {percentile(raw, 50):.1f} ms p95 {percentile(raw, 95):.1f} ms"
        )
        log(f"traces: {len(sample_users)} users' requests (first page), API and raw queries in turn")
        _alternate(user_pairs(warm_users))
        api_users, raw_users = _alternate(user_pairs(sample_users))
        log(
            f"traces: user requests API p95 {percentile(api_users, 95):.1f} ms; raw queries p95 "
            f"{percentile(raw_users, 95):.1f} ms"
        )
    finally:
        portal.close()
        server.stop()
    _check_audited(calls=len(cids) + len(users))
    # The same calls as gunicorn's worker timed them: the rest of each call is the HTTP hop.
    inside = _server_times(access_log, "/api/v1/traces/")[len(warm) :]
    if len(inside) != len(sample):
        raise RuntimeError(f"traces: gunicorn logged {len(inside)} timed trails, {len(sample)} expected")
    log(
        f"traces: the same trails inside gunicorn's worker p50 {percentile(inside, 50):.1f} ms "
        f"p95 {percentile(inside, 95):.1f} ms"
    )
    api95, raw95 = percentile(api, 95), percentile(raw, 95)
    return [
        Result("trace_api_p95_ms", api95, "ms", raw95, "raw_term_query_p95_ms", 2, goal_op="<="),
        Result(
            "trace_api_p95_ms_absolute",
            api95,
            "ms",
            raw95,
            "raw_term_query_p95_ms",
            50,
            goal_op="<=",
            goal_on="value",
        ),
        Result("trace_api_p50_ms", percentile(api, 50), "ms", percentile(raw, 50), "raw_term_query_p50_ms"),
        Result("trace_api_in_worker_p95_ms", percentile(inside, 95), "ms", raw95, "raw_term_query_p95_ms"),
        Result(
            "trace_api_in_worker_p50_ms",
            percentile(inside, 50),
            "ms",
            percentile(raw, 50),
            "raw_term_query_p50_ms",
        ),
        Result(
            "user_requests_api_p95_ms",
            percentile(api_users, 95),
            "ms",
            percentile(raw_users, 95),
            "raw_collapse_and_summary_p95_ms",
        ),
    ]
