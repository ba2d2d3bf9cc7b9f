#!/usr/bin/env bash
# `make bench`: start the real services, then run every benchmark on its own database, Redis DB and index
# prefix (the test suite and a developer's portal may use the same services meanwhile). Writes
# bench/results/latest.json and bench/README.md. Sizes: BENCH_* variables (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh start)"

# Two runs at once (say `bench.sh ingest` and `bench.sh traces` by two people) each need their own names:
# BENCH_DATABASE (skywatch_bench…), BENCH_REDIS_DB and BENCH_INDEX_PREFIX (bench-…, not starting with
# another run's prefix followed by "-", whose cleanup would delete these indices too).
export BENCH_DATABASE="${BENCH_DATABASE:-skywatch_bench}"
export BENCH_REDIS_DB="${BENCH_REDIS_DB:-13}"
export BENCH_INDEX_PREFIX="${BENCH_INDEX_PREFIX:-bench-obs-events}"

# The portal's database only serves to DROP/CREATE the bench database; nothing reads or writes its tables.
export BENCH_ADMIN_DATABASE_URL="$DATABASE_URL"
export DATABASE_URL="${DATABASE_URL%/*}/$BENCH_DATABASE"
export CELERY_BROKER_URL="${CELERY_BROKER_URL%/*}/$BENCH_REDIS_DB"
unset CELERY_RESULT_BACKEND CACHE_URL
export ELASTICSEARCH_INDEX_PREFIX="$BENCH_INDEX_PREFIX"
export DJANGO_SETTINGS_MODULE=skywatch_portal.settings
# One bench person sends thousands of timed reads a minute, which the per-person read limit exists to stop;
# its counting (one cache increment a request) is still timed.
export API_READ_RATE_LIMIT="${API_READ_RATE_LIMIT:-1000000/min}"

exec .venv/bin/python -m bench.run "$@"
