#!/usr/bin/env bash
# `make test`: start the real services, lint, then run the whole pytest suite against them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-test-tools.sh
eval "$(scripts/services.sh start)"

# Tests use their own Redis database and index prefix, so a developer's running portal is left alone.
export CELERY_BROKER_URL="${CELERY_BROKER_URL%/*}/15"
export ELASTICSEARCH_INDEX_PREFIX=test-obs-events
export CHROMIUM_PATH=/usr/bin/chromium
export SKYWATCH_REQUIRE_SERVICES=1

# The 3-node cluster of tests/traces/test_cluster.py takes a minute or more to form: on a whole-suite run it
# starts now, in the background, while lint and the other tests run; the test waits for it (cluster-start
# is idempotent) and stops it. Stopped here too, whatever happened, so no run leaves it behind.
CLUSTER_STARTER=
if (($# == 0)); then
    mkdir -p test-artifacts
    scripts/services.sh cluster-start >test-artifacts/es-cluster-start.log 2>&1 &
    CLUSTER_STARTER=$!
fi
stop_cluster() {
    if [[ -n $CLUSTER_STARTER ]]; then
        wait "$CLUSTER_STARTER" 2>/dev/null || true
        scripts/services.sh cluster-stop 2>>test-artifacts/es-cluster-start.log || true
    fi
}
trap stop_cluster EXIT

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
