#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (tools' own browser downloads fail here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is missing: run 'apt-get install chromium' as root." >&2
  exit 1
fi
echo "Installing chromium (Debian package)..." >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
