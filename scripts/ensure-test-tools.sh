#!/usr/bin/env bash
# Install the Debian tools the tests drive when they are missing: Chromium (browser tests; tools' own
# browser downloads fail here), nginx, systemd-analyze and openssl (tests/deploy checks the rendered units
# and site with them).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing test tools: run 'apt-get install ${missing[*]}' as root." >&2
  exit 1
fi
echo "Installing ${missing[*]} (Debian packages)..." >&2
apt-get update -q >&2
# A package's postinst may start its daemon (nginx on port 80): the tests run their own instances.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
if [[ " ${missing[*]} " == *" nginx "* ]] && pgrep -x nginx >/dev/null; then nginx -s stop 2>/dev/null || true; fi
