#!/usr/bin/env bash
# Install the Debian tools the tests drive when they are missing: Chromium (browser tests; tools' own
# browser downloads fail here), nginx, systemd-analyze and openssl (tests/deploy checks the rendered units
# and site with them), Node.js and npm (tests/wire/test_sdks_node.py); then the Node SDKs that test drives
# and axe-core (the pages' accessibility test loads it into Chromium), pinned by
# tests/wire/node/package-lock.json, into $SKYWATCH_CACHE/node-sdks (npm ci, from the npm registry; again
# only when the lock file changed).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE_DIR=${SKYWATCH_CACHE:-$REPO_DIR/.cache}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing test tools: run 'apt-get install ${missing[*]}' as root." >&2
    exit 1
  fi
  echo "Installing ${missing[*]} (Debian packages)..." >&2
  apt-get update -q >&2
  # A package's postinst may start its daemon (nginx on port 80): the tests run their own instances.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  if [[ " ${missing[*]} " == *" nginx "* ]] && pgrep -x nginx >/dev/null; then nginx -s stop 2>/dev/null || true; fi
fi

node_src=$REPO_DIR/tests/wire/node
node_dir=$CACHE_DIR/node-sdks
if ! cmp -s "$node_src/package-lock.json" "$node_dir/package-lock.json" || [ ! -d "$node_dir/node_modules" ]; then
  echo "Installing the Node SDKs of tests/wire/node (npm ci) into $node_dir..." >&2
  mkdir -p "$node_dir"
  rm -rf "$node_dir/node_modules" "$node_dir/package-lock.json"
  cp "$node_src/package.json" "$node_src/package-lock.json" "$node_dir/"
  # A failed install leaves no lock file behind, so the next run tries again.
  if ! (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
    rm -f "$node_dir/package-lock.json"
    exit 1
  fi
fi
