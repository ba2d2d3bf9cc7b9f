#!/usr/bin/env bash
# `make run`: migrate, load demo traffic into an empty database, (re)create the demo login, serve the portal
# on 127.0.0.1:$PORT (default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}

$PY manage.py migrate --noinput
# Before the portal's own log lines arrive, so a new database gets the demo and a used one is left alone.
$PY manage.py seed_demo --if-empty
$PY manage.py collectstatic --noinput -v 0
password=$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')
$PY manage.py create_user demo --role admin --password "$password" --replace >/dev/null
# The portal ships its own log lines to itself, as the service skywatch-portal.
export OBSERVATORY_URL=http://127.0.0.1:$PORT
OBSERVATORY_API_KEY=$($PY manage.py portal_key --file .cache/portal-observatory-key | tail -n 1)
export OBSERVATORY_API_KEY
cat <<MSG

  SkyWatch Portal: http://127.0.0.1:$PORT/
  Sign in as  demo / $password   (role admin; a new password is made on every start)

MSG
exec $PY manage.py runserver "127.0.0.1:$PORT"
