#!/usr/bin/env bash
# `make bench`: start the real services, then run every benchmark on its own database, Redis DB and index
# prefix (the test suite and a developer's portal may use the same services meanwhile). Writes
# bench/results/latest.json and bench/README.md. Sizes: BENCH_* variables (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh start)"

# The portal's database only serves to DROP/CREATE skywatch_bench; nothing reads or writes its tables.
export BENCH_ADMIN_DATABASE_URL="$DATABASE_URL"
export DATABASE_URL="${DATABASE_URL%/*}/skywatch_bench"
export CELERY_BROKER_URL="${CELERY_BROKER_URL%/*}/13"
unset CELERY_RESULT_BACKEND CACHE_URL
export ELASTICSEARCH_INDEX_PREFIX=bench-obs-events
export DJANGO_SETTINGS_MODULE=skywatch_portal.settings

exec .venv/bin/python -m bench.run "$@"
