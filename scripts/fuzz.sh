#!/usr/bin/env bash
# `make fuzz`: schemathesis against /api/schema/ with 1,000 generated cases per operation (positive and
# negative), against the real services; `make test` runs the same tests with a few dozen cases each.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh start)"

# Its own Redis database and index prefix, as scripts/test.sh does, so a running portal is left alone.
export CELERY_BROKER_URL="${CELERY_BROKER_URL%/*}/14"
export ELASTICSEARCH_INDEX_PREFIX=fuzz-obs-events
export SKYWATCH_REQUIRE_SERVICES=1
export FUZZ_MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-1000}"
export FUZZ_MIN_CASES="${FUZZ_MIN_CASES:-$FUZZ_MAX_EXAMPLES}"

exec .venv/bin/pytest -p no:cacheprovider tests/fuzz "$@"
