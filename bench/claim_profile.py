"""What the narrow pending table (issue 14's next pipeline step) would save, measured before it is built: the
pipeline's one statement per chunk as it is, beside the same statement with the claim taken from a narrow
table of pending event ids instead of an UPDATE of the wide raw rows.

Today a chunk is claimed by `UPDATE ingest_rawevent SET aggregated_at = … RETURNING` (a new version of each
wide raw row, with an entry in each of its seven indexes). The narrow design keeps the pending state in its
own table (raw id, client time, received time), which ingestion fills beside the raw rows; the claim
deletes the chunk's rows from it (`DELETE … RETURNING`, under the same `FOR UPDATE SKIP LOCKED`), then
reads the raw rows by id, never updating them. Both statements then write the same index backlog and
rollups (the rollups of the first chunk are compared). Printed: each statement's median per chunk and the
ingest side's price, an INSERT of the chunk's pending rows.

Not part of `make bench` (its figures are a design's estimate, not the app's). Run it with the bench's
environment (see scripts/bench.sh) after `scripts/bench.sh pipeline` or `python -m bench.pipeline_profile`,
which leave the bench database with 50,000 aggregated raw events: `python -m bench.claim_profile [rounds]`.
Both designs start every round from the same committed state (every event pending, vacuumed) and each
statement runs in a transaction that is rolled back, the two alternating chunk by chunk.
"""

import os
import statistics
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.common.dbtypes import id_array  # noqa: E402
from apps.ingest.models import CLIENT_TIME_COLUMN, WITHIN_CLIENT_TIMES_SQL  # noqa: E402
from apps.metrics.services import ROLLUP_CHUNK_COLUMNS, rollup_params, rollups_statement  # noqa: E402
from apps.pipeline import services  # noqa: E402

CHUNK = 2_000
CHUNKS = 20
PENDING = "bench_pending_aggregation"

_CHUNK_CTE = "chunk AS MATERIALIZED ("
NARROW = rollups_statement(
    f"SELECT {ROLLUP_CHUNK_COLUMNS}, {CLIENT_TIME_COLUMN}, received_at, index_rejected_at"
    f" FROM ingest_rawevent WHERE id IN (SELECT raw_id FROM claimed) AND {WITHIN_CLIENT_TIMES_SQL}",
    services._BACKLOG_FROM_CHUNK,
).replace(  # the claim goes first: a CTE reads only those before it
    f"WITH {_CHUNK_CTE}",
    f"WITH claimed AS (DELETE FROM {PENDING} WHERE raw_id IN (SELECT raw_id FROM {PENDING}"
    " WHERE raw_id = ANY(%(ids)s::bigint[]) ORDER BY raw_id FOR UPDATE SKIP LOCKED) RETURNING raw_id), "
    f"{_CHUNK_CTE}",
    1,
)
if "claimed AS" not in NARROW:
    raise RuntimeError("claim_profile: rollups_statement no longer starts with the chunk CTE")
DESIGNS = {"UPDATE of the raw rows (now)": services._CLAIM_INTO_ROLLUPS, "narrow pending table": NARROW}


def _counts(cursor) -> list[tuple]:
    cursor.execute(
        "SELECT granularity, event, bucket_start, service, stage, count FROM metrics_rollupcount"
        " ORDER BY 1, 2, 3, 4, 5"
    )
    return cursor.fetchall()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {PENDING} (raw_id bigint PRIMARY KEY, client_timestamp timestamptz,"
            " received_at timestamptz)"
        )
        cursor.execute(f"SELECT id, {CLIENT_TIME_COLUMN} FROM ingest_rawevent ORDER BY id")
        rows = cursor.fetchall()[: CHUNK * CHUNKS]
    if len(rows) < CHUNK:
        raise SystemExit("claim_profile: too few raw events; run `scripts/bench.sh pipeline` first")
    chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
    seconds: dict[str, list[float]] = {name: [] for name in DESIGNS}
    pending_inserts: list[float] = []
    first_counts: dict[str, list[tuple]] = {}
    try:
        for round_ in range(rounds):
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE ingest_rawevent SET aggregated_at = NULL WHERE id = ANY(%s)",
                    [[r[0] for r in rows]],
                )
                cursor.execute(f"TRUNCATE {PENDING}, ingest_indexbacklog")
                for chunk in chunks:  # what ingestion would add per chunk (an upper bound: it reads raw rows)
                    started = time.perf_counter()
                    cursor.execute(
                        f"INSERT INTO {PENDING} SELECT id, {CLIENT_TIME_COLUMN}, received_at"
                        " FROM ingest_rawevent WHERE id BETWEEN %s AND %s",
                        [chunk[0][0], chunk[-1][0]],
                    )
                    pending_inserts.append(time.perf_counter() - started)
                cursor.execute(f"VACUUM ANALYZE ingest_rawevent, {PENDING}, ingest_indexbacklog")
            names = list(DESIGNS) if round_ % 2 == 0 else list(reversed(DESIGNS))
            for chunk in chunks:
                ids = [r[0] for r in chunk]
                params = {
                    "now": timezone.now(),
                    "ids": id_array(ids),
                    **services._bound_params(services.client_time_bounds(r[1] for r in chunk)),
                    **rollup_params(),
                }
                for name in names:
                    with transaction.atomic(), connection.cursor() as cursor:
                        started = time.perf_counter()
                        cursor.execute(DESIGNS[name], params)
                        claimed = cursor.fetchone()[0]
                        seconds[name].append(time.perf_counter() - started)
                        if claimed != len(ids):
                            raise RuntimeError(f"{name}: claimed {claimed} of {len(ids)} events")
                        if chunk is chunks[0] and name not in first_counts:
                            first_counts[name] = _counts(cursor)
                        transaction.set_rollback(True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {PENDING}")
            cursor.execute(
                "UPDATE ingest_rawevent SET aggregated_at = %s WHERE id = ANY(%s)",
                [timezone.now(), [r[0] for r in rows]],
            )
    if len({repr(counts) for counts in first_counts.values()}) != 1:
        raise RuntimeError("claim_profile: the two designs wrote different rollups")
    print(f"{len(chunks)} chunks of {CHUNK} events, {rounds} rounds; median per chunk:")
    for name, values in seconds.items():
        print(f"  {name:32s} {statistics.median(values) * 1000:7.1f} ms")
    now, narrow = (statistics.median(values) for values in seconds.values())
    print(f"  the narrow claim takes {narrow / now:.2f} of the statement's time")
    inserted = statistics.median(pending_inserts) * 1000
    print(f"  ingest's price, at most: INSERT of a chunk's pending rows from its raw rows {inserted:.1f} ms")


if __name__ == "__main__":
    main()
