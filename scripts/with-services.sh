#!/usr/bin/env bash
# Run a command against this machine's services (`make worker`, `make beat`): each URL that
# `scripts/services.sh env` prints, unless the environment already sets that variable (an empty one counts
# as unset). So a worker started after `export DATABASE_URL=…` uses that database, like the portal does.
set -euo pipefail
while read -r _ assignment; do
    name=${assignment%%=*}
    [[ -n ${!name:-} ]] || export "${assignment?}"
done < <("$(dirname "$0")/services.sh" env)
exec "$@"
