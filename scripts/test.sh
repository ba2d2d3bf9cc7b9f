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

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
