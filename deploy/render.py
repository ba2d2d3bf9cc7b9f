#!/usr/bin/env python3
"""Render the deployment templates in deploy/templates/ for one machine: paths, user, names and ports.

    python3 deploy/render.py --prefix /opt/skywatch --user skywatch --server-name portal.example.com \\
        --out build/deploy

writes build/deploy/systemd/ (units), build/deploy/nginx/skywatch.conf and build/deploy/skywatch.env (with a
fresh SECRET_KEY, mode 0600). Standard library only: it runs before any virtualenv exists.

A template names a value as @NAME@. A line holding a list-valued placeholder (the listen addresses) is
repeated once per value. Every placeholder must be known and every one is replaced, or rendering fails.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")

SYSTEMD_UNITS = (
    "skywatch.target",
    "skywatch-migrate.service",
    "skywatch-web.service",
    "skywatch-worker@.service",
    "skywatch-beat.service",
)
NGINX_SITE = "skywatch.conf"
ENV_FILE = "skywatch.env"

# Time budgets, shortest wait first; tests/deploy checks that each stays above the one before.
# nginx: probes answer fast or the machine is taken out; pages and the ingestion API within 30 s; charts and
# the series API read rollups over long ranges (and CSV downloads), so only they may take 2 minutes.
PROBE_READ_SECONDS = 15
READ_SECONDS = 30
LONG_READ_SECONDS = 120
# gunicorn kills a worker silent for longer than this, so it must outlast nginx's longest wait (nginx then
# answers 504 rather than a killed worker's 502); on stop, requests in flight get as long to finish.
GUNICORN_TIMEOUT_SECONDS = LONG_READ_SECONDS + 5
# PostgreSQL cancels a web request's statement after this, so the portal answers its own 503 before nginx's
# longest wait ends (and the query does not run on after everyone gave up on it).
STATEMENT_TIMEOUT_SECONDS = LONG_READ_SECONDS - 5
# systemd SIGKILLs what is left after this: gunicorn's graceful stop comes first.
WEB_STOP_SECONDS = GUNICORN_TIMEOUT_SECONDS + 15
# Celery's warm shutdown waits for running tasks. The longest hard time limit is lifecycle.apply_retention's
# 3600 s (the pipeline's are 300 s): a stop during the daily retention run may wait that long, and most stops
# return as soon as the current chunks are done.
WORKER_STOP_SECONDS = 3600 + 60

# ProtectHome= hides these from the services: code installed under them could not be read.
HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))


@dataclass(frozen=True)
class RenderOptions:
    """Everything a machine's files differ in."""

    prefix: Path
    user: str
    group: str
    venv: Path
    env_file: Path
    bind: str
    upstream: str
    server_name: str
    tls_cert: Path
    tls_key: Path
    http_listen: tuple[str, ...] = ("80", "[::]:80")
    https_listen: tuple[str, ...] = ("443", "[::]:443")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    def values(self) -> dict[str, str | tuple[str, ...]]:
        """Return the value of every placeholder the templates may use."""
        return {
            "PREFIX": str(self.prefix),
            "VENV": str(self.venv),
            "USER": self.user,
            "GROUP": self.group,
            "ENV_FILE": str(self.env_file),
            "BIND": self.bind,
            "UPSTREAM": self.upstream,
            "SERVER_NAME": self.server_name,
            "TLS_CERT": str(self.tls_cert),
            "TLS_KEY": str(self.tls_key),
            "HTTP_LISTEN": self.http_listen,
            "HTTPS_LISTEN": self.https_listen,
            "SECRET_KEY": self.secret_key,
            "PROBE_READ_SECONDS": f"{PROBE_READ_SECONDS}s",
            "READ_SECONDS": f"{READ_SECONDS}s",
            "LONG_READ_SECONDS": f"{LONG_READ_SECONDS}s",
            "GUNICORN_TIMEOUT_SECONDS": str(GUNICORN_TIMEOUT_SECONDS),
            "STATEMENT_TIMEOUT_SECONDS": str(STATEMENT_TIMEOUT_SECONDS),
            "WEB_STOP_SECONDS": f"{WEB_STOP_SECONDS}s",
            "WORKER_STOP_SECONDS": f"{WORKER_STOP_SECONDS}s",
        }


class RenderError(ValueError):
    """A template names an unknown placeholder, or the options cannot work."""


def render_text(template: str, values: dict[str, str | tuple[str, ...]], *, name: str = "template") -> str:
    """Return the template with every @NAME@ replaced; a line with a list value is repeated per item."""
    lines = []
    for number, line in enumerate(template.splitlines(keepends=True), start=1):
        names = PLACEHOLDER.findall(line)
        unknown = sorted(set(names) - set(values))
        if unknown:
            raise RenderError(f"{name}:{number}: unknown placeholder(s) {', '.join(unknown)}")
        lists = [n for n in names if isinstance(values[n], tuple)]
        if len(set(lists)) > 1:
            raise RenderError(f"{name}:{number}: more than one list placeholder on a line")
        items = values[lists[0]] if lists else (None,)
        for item in items:

            def replace(match: re.Match[str], item: str | None = item) -> str:
                value = values[match.group(1)]
                return item if isinstance(value, tuple) else value

            lines.append(PLACEHOLDER.sub(replace, line))
    return "".join(lines)


def _check(options: RenderOptions) -> None:
    for path in (options.prefix, options.venv, options.env_file, options.tls_cert, options.tls_key):
        if not path.is_absolute():
            raise RenderError(f"{path} is not an absolute path")
    for hidden in HIDDEN_BY_PROTECT_HOME:
        if options.prefix == hidden or hidden in options.prefix.parents:
            raise RenderError(f"--prefix {options.prefix}: the units set ProtectHome=, which hides {hidden}")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*", options.user) or options.user == "root":
        raise RenderError(f"--user {options.user!r}: an unprivileged system user name is needed")
    if not re.fullmatch(r"[A-Za-z0-9.-]+", options.server_name):
        raise RenderError(f"--server-name {options.server_name!r} is not a host name")


def render(options: RenderOptions, out: Path) -> list[Path]:
    """Write every rendered file under `out` (systemd/, nginx/, the env file) and return their paths."""
    _check(options)
    values = options.values()
    targets = [(name, out / "systemd" / name) for name in SYSTEMD_UNITS]
    targets += [(NGINX_SITE, out / "nginx" / NGINX_SITE), (ENV_FILE, out / ENV_FILE)]
    written = []
    for name, target in targets:
        text = render_text((TEMPLATES / name).read_text(), values, name=name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o600 if name == ENV_FILE else 0o644)  # the env file holds the secret key
        written.append(target)
    return written


def _upstream_for(bind: str) -> str:
    """Return the address nginx dials for gunicorn's bind address (a wildcard bind is dialled on loopback)."""
    host, _, port = bind.rpartition(":")
    if host in ("0.0.0.0", ""):
        return f"127.0.0.1:{port}"
    if host == "[::]":
        return f"[::1]:{port}"
    return bind


def parse_args(argv: list[str] | None = None) -> tuple[RenderOptions, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--prefix",
        type=Path,
        default=Path("/opt/skywatch"),
        help="the checkout (manage.py; default: %(default)s)",
    )
    parser.add_argument("--venv", type=Path, help="its virtualenv (default: PREFIX/.venv)")
    parser.add_argument(
        "--user", default="skywatch", help="the unprivileged user the services run as (default: %(default)s)"
    )
    parser.add_argument("--group", help="their group (default: the user's name)")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path("/etc/skywatch/skywatch.env"),
        help="where the units read the environment (default: %(default)s)",
    )
    parser.add_argument(
        "--bind", default="127.0.0.1:8000", help="gunicorn's host:port (default: %(default)s)"
    )
    parser.add_argument("--upstream", help="where nginx reaches gunicorn (default: from --bind)")
    parser.add_argument(
        "--server-name",
        default="portal.example.com",
        help="the portal's public host name (default: %(default)s, a placeholder)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=Path("/etc/ssl/skywatch/fullchain.pem"),
        help="nginx's certificate chain (default: %(default)s)",
    )
    parser.add_argument(
        "--tls-key",
        type=Path,
        default=Path("/etc/ssl/skywatch/privkey.pem"),
        help="its private key (default: %(default)s)",
    )
    parser.add_argument(
        "--http-listen", action="append", help="nginx listen address for http (repeat; default: 80, [::]:80)"
    )
    parser.add_argument("--https-listen", action="append", help="the same for https (default: 443, [::]:443)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    options = RenderOptions(
        prefix=args.prefix,
        user=args.user,
        group=args.group or args.user,
        venv=args.venv or args.prefix / ".venv",
        env_file=args.env_file,
        bind=args.bind,
        upstream=args.upstream or _upstream_for(args.bind),
        server_name=args.server_name,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        http_listen=tuple(args.http_listen or RenderOptions.http_listen),
        https_listen=tuple(args.https_listen or RenderOptions.https_listen),
    )
    return options, args.out


def main(argv: list[str] | None = None) -> int:
    options, out = parse_args(argv)
    try:
        written = render(options, out)
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    env_file = out / ENV_FILE
    lines = env_file.read_text().splitlines()
    left = [line.split("=", 1)[0] for line in lines if "<" in line and not line.startswith("#")]
    if left:
        print(f"fill in the <placeholders> of {', '.join(left)} in {env_file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
