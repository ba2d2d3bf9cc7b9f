#!/usr/bin/env bash
# `make soak`: twenty synthetic services send through the observatory client while a worker is killed
# mid-chunk, Redis restarts and is flushed, Elasticsearch stops for 60 s and PostgreSQL restarts; then the
# clients' 202s are reconciled with PostgreSQL, the rollups (bucket by bucket) and Elasticsearch, and the
# claim ledger shows no event's SKIP LOCKED claim committed twice by the two workers (about 6 minutes).
# Runs on its own PostgreSQL cluster (15/soak, :5442), Redis (:6389) and Elasticsearch (:9210/:9310),
# started and stopped here; the default services are never touched. Options: see `python -m soak -h`.
# Needs root (like scripts/services.sh). Report: test-artifacts/soak-long/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m soak "$@"
