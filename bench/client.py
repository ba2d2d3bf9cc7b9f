"""Issue "observatory client": what `Tracker.track()` costs its caller, and events/s one Tracker delivers.

Caller cost: a Tracker pointed at a closed loopback port (nothing listens: every POST is refused at once),
with a queue large enough for every call; before the clock starts its sender thread has tried the port
with the warm-up event and sleeps in a back-off longer than the loop, so the figure is only the caller's
work (copy the properties, stamp time and IDs, enqueue; encoding is the sender thread's) and cannot
depend on the network or on the sender thread competing for the GIL. Beside it, in the same process and
run, a bare `queue.Queue.put` of the same events' property dicts, timed once that sender thread has given
up every queued event (so it does not compete with the baseline either). Both loops unpack the same
(event, properties, user_id, correlation_id) rows; best of at least 5 rounds.

Delivery: the portal under gunicorn on the bench database, one Tracker (batch size 100, gzip, as shipped)
in its own process tracks N events as fast as it can (its queue holds all N, so none is dropped), then
`flush()`; the clock stops when flush returns and all N rows are stored. Beside it, one client process
POSTs the same events as pre-built gzip (and plain JSON) batches of the same size, one after the other.

Every process here is spawned and imports no Django, so none inherits the parent's database connections.
"""

import logging
import multiprocessing
import queue
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from . import common
from .common import Config, Gunicorn, Result, log, wait_until
from .ingest import run_clients
from .workload import make_events

SERVICE = "bench-client"
STAGE = "bench"
POOL = 1_000  # distinct events the caller-cost loops cycle through


# --- child processes ------------------------------------------------------------------------------------


def _caller_cost(job: dict[str, Any]) -> dict[str, Any]:
    """Time `calls` Tracker.track() calls and as many queue.Queue.put() of the same dicts; µs per call."""
    from observatory.tracker import Tracker

    # Refused connections and the abandoned queue at shutdown are the point here, not news.
    logging.getLogger("observatory").setLevel(logging.CRITICAL)
    calls, rounds = job["calls"], job["rounds"]
    pool = make_events(POOL, seed=7)
    # Both loops unpack the same rows, so neither pays for building the other's arguments.
    rows = [(ev["event"], ev["properties"], ev["user_id"], ev["correlation_id"]) for ev in pool]
    sequence = (rows * (calls // POOL + 1))[:calls]
    best = {"track": float("inf"), "put": float("inf")}
    for _ in range(rounds):
        tracker = Tracker(
            url=f"http://127.0.0.1:{job['closed_port']}",
            api_key="bench-closed-port",
            service=SERVICE,
            stage=STAGE,
            max_queue=calls + 1,
            # One refused POST, then a back-off that outlasts the loop (shutdown cuts it short).
            backoff_base=600.0,
            backoff_max=600.0,
            max_retry_time=1200.0,
        )
        try:
            tracker.track("warm_up", {"n": 1}, "user-0")  # starts the sender thread outside the clock
            tracker.flush(timeout=0)  # ... and sends the warm-up event now, not after flush_interval
            # Then the thread sleeps in its back-off: it cannot compete with the loop.
            wait_until(
                lambda t=tracker: t.stats()["retries"] > 0,
                timeout=60,
                what="try of the closed port by the sender thread",
                interval=0.001,
            )
            started = time.perf_counter()
            for event, properties, user_id, correlation_id in sequence:
                tracker.track(event, properties, user_id, correlation_id=correlation_id)
            elapsed = time.perf_counter() - started
            stats = tracker.stats()
        finally:
            tracker.shutdown(timeout=0)
        if stats["tracked"] != calls + 1 or stats["dropped"] or stats["rejected"]:
            raise RuntimeError(f"the tracker did not take every call: {stats}")
        # The sender thread abandons what shutdown(timeout=0) left queued.
        wait_until(
            lambda t=tracker: not t.stats()["queued"],
            timeout=60,
            what="empty queue after shutdown",
            interval=0.01,
        )
        best["track"] = min(best["track"], elapsed / calls * 1e6)

        bare: queue.Queue[Any] = queue.Queue()
        started = time.perf_counter()
        for _event, properties, _user_id, _correlation_id in sequence:  # the same unpacking as above
            bare.put(properties)
        elapsed = time.perf_counter() - started
        if bare.qsize() != calls:
            raise RuntimeError("queue.Queue lost items")
        best["put"] = min(best["put"], elapsed / calls * 1e6)
        del bare
    return best


def _tracker_delivery(job: dict[str, Any]) -> dict[str, Any]:
    """Track `count` events on one Tracker as fast as possible, then flush; report the clock and stats."""
    from observatory.tracker import Tracker

    events = make_events(job["count"], seed=job["seed"], end=datetime.fromisoformat(job["end"]))
    tracker = Tracker(
        url=job["url"],
        api_key=job["key"],
        service=SERVICE,
        stage=STAGE,
        batch_size=job["batch_size"],
        max_queue=job["count"] + 1,
        timeout=60,
        max_retries=0,  # a failure must show, not hide in a retry
    )
    try:
        started = time.monotonic()
        for ev in events:
            tracker.track(
                ev["event"],
                ev["properties"],
                ev["user_id"],
                timestamp=ev["timestamp"],
                correlation_id=ev["correlation_id"],
            )
        tracked = time.monotonic()
        flushed = tracker.flush(timeout=job["timeout"])
        finished = time.monotonic()
        stats = tracker.stats()
    finally:
        tracker.shutdown(timeout=1)
    return {"t0": started, "tracked": tracked, "t1": finished, "flushed": flushed, "stats": stats}


def _child_main(target_name: str, job: dict[str, Any], results: Any) -> None:
    try:
        results.put({"ok": globals()[target_name](job)})
    except Exception as exc:  # reported to the parent, which fails the benchmark
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def in_child(target_name: str, job: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run one of this module's child functions in a spawned process; return its result (or raise)."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    process = ctx.Process(target=_child_main, args=(target_name, job, results), daemon=True)
    process.start()
    try:
        try:
            outcome = results.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{target_name}: no answer within {timeout}s") from None
        process.join(timeout=30)
    finally:
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    if "error" in outcome:
        raise RuntimeError(f"{target_name}: {outcome['error']}")
    return outcome["ok"]


# --- database and broker state ------------------------------------------------------------------------------


def _sql(statement: str) -> list[tuple]:
    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _stored() -> int:
    return _sql("SELECT count(*) FROM ingest_rawevent")[0][0]


def _reset() -> None:
    _sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    common.flush_broker()


def _wait_stored(expected: int, timeout: float) -> float | None:
    """Wait until `expected` rows are stored; return when that was seen, or None if it already was.

    The endpoint answers 202 only after its commit, so every accepted event is stored by the time flush()
    returns, and the first count normally finds them all (None: the flush time is the end of the clock).
    """
    deadline = time.monotonic() + timeout
    first = True
    while (stored := _stored()) < expected:
        first = False
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stored} of {expected} events stored after {timeout}s")
        time.sleep(0.05)
    if stored != expected:
        raise RuntimeError(f"{stored} rows stored, {expected} expected")
    return None if first else time.monotonic()


# --- the benchmark ----------------------------------------------------------------------------------------


def caller_cost(config: Config) -> dict[str, float]:
    """µs per call of Tracker.track() (queue never full, closed port) and of queue.Queue.put."""
    # At least 5 rounds: a round takes a fraction of a second, and a shared machine's noise only adds.
    job = {"calls": config.client_calls, "rounds": max(config.rounds, 5), "closed_port": common.free_port()}
    log(f"client: caller cost of {config.client_calls} track() calls vs queue.Queue.put, closed port")
    best = in_child("_caller_cost", job, timeout=config.phase_timeout)
    log(f"client: track() {best['track']:.2f} µs/call, queue.put {best['put']:.2f} µs/call")
    return best


def tracker_phase(config: Config, base_job: dict[str, Any]) -> float:
    """Events/s from the first track() until flush() returned and every event is stored."""
    job = {**base_job, "count": config.client_events, "timeout": config.phase_timeout}
    outcome = in_child("_tracker_delivery", job, timeout=config.phase_timeout + 60)
    stats = outcome["stats"]
    if not outcome["flushed"] or stats["accepted"] != config.client_events or stats["failed_events"]:
        raise RuntimeError(f"the tracker did not deliver every event: {stats}")
    stored_at = _wait_stored(config.client_events, timeout=30)
    elapsed = (outcome["t1"] if stored_at is None else stored_at) - outcome["t0"]
    eps = config.client_events / elapsed
    log(
        f"client: tracker {eps:,.0f} events/s (tracking took {outcome['tracked'] - outcome['t0']:.2f} s "
        f"of {elapsed:.2f} s)"
    )
    _reset()
    return eps


def requests_phase(kind: str, config: Config, base_job: dict[str, Any]) -> float:
    """Events/s of one client process POSTing the same events as pre-built bodies (gzip or plain)."""
    eps = run_clients(
        kind, total=config.client_events, clients=1, base_job=base_job, timeout=config.phase_timeout
    )
    _wait_stored(config.client_events, timeout=30)
    log(f"client: one process, pre-built {kind} bodies {eps:,.0f} events/s")
    _reset()
    return eps


def run(config: Config) -> list[Result]:
    """Measure the caller's cost of track() and the events/s one Tracker delivers; return their figures."""
    cost = caller_cost(config)

    raw_key = common.manage("create_service_key", SERVICE, "--stage", STAGE).strip().splitlines()[-1]
    base_job = {
        "url": "",
        "key": raw_key,
        "batch_size": config.batch_size,
        "end": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "seed": 2000,
    }
    best = {"tracker": 0.0, "gzip": 0.0, "batch": 0.0}
    _reset()
    server = Gunicorn(workers=config.gunicorn_workers, env=common.portal_env(INGEST_RATE_LIMIT="1000000/min"))
    try:
        base_job["url"] = server.url
        log("client: warming up the gunicorn workers (not counted)")
        run_clients(
            "gzip", total=20 * config.batch_size, clients=1, base_job={**base_job, "seed": 9100}, timeout=120
        )
        _reset()
        for round_number in range(1, config.rounds + 1):
            log(
                f"client: round {round_number}/{config.rounds}: {config.client_events} events by one "
                "Tracker, then by one process with pre-built gzip and plain JSON batches"
            )
            best["tracker"] = max(best["tracker"], tracker_phase(config, base_job))
            best["gzip"] = max(best["gzip"], requests_phase("gzip", config, base_job))
            best["batch"] = max(best["batch"], requests_phase("batch", config, base_job))
    finally:
        server.stop()
        _reset()
    return [
        Result(
            "client_track_us_per_call",
            cost["track"],
            "µs/call",
            cost["put"],
            "queue_put_us_per_call",
            3,
            goal_op="<=",
        ),
        Result(
            "client_tracker_events_per_s",
            best["tracker"],
            "events/s",
            best["gzip"],
            "one_client_prebuilt_gzip_events_per_s",
        ),
        Result(
            "client_tracker_vs_plain_json",
            best["tracker"],
            "events/s",
            best["batch"],
            "one_client_prebuilt_json_events_per_s",
        ),
    ]
