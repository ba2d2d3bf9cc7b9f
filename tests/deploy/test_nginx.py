"""The nginx site: `nginx -t` clean, the body limit the portal's, and a real nginx in front of the web unit's
gunicorn: probes over http, https seen as https by the portal, bodies up to the limit passed as sent."""

import gzip
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.conftest import _database_url_for, free_port, wait_for

from .conftest import ensure_tool, render, render_into, service_overrides, start_unit, unit_environment
from .unitfile import UnitFile

SERVER_NAME = "portal.example.com"


def main_config(directory: Path, site: Path) -> Path:
    """Write the smallest nginx.conf that includes the site the way Debian's does (inside http {}), with
    every file nginx writes kept in `directory`."""
    for name in ("body", "proxy"):
        (directory / name).mkdir(exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(
        f"""worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{
    worker_connections 64;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    # Workers may run as nobody, who cannot enter a root-only test directory: stream, never spill to disk.
    proxy_max_temp_file_size 0;
    include {site};
}}
"""
    )
    return config


def nginx_test(config: Path) -> subprocess.CompletedProcess:
    nginx = ensure_tool("nginx", "nginx")
    return subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "error.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nginx_accepts_the_rendered_site(rendered, tmp_path):
    result = nginx_test(main_config(tmp_path, rendered[render.NGINX_SITE]))
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_nginx_t_does_catch_a_broken_site(rendered, tmp_path):
    site = tmp_path / "broken.conf"
    text = rendered[render.NGINX_SITE].read_text()
    site.write_text(text.replace("server_tokens off;", "server_tokens off; gzip_everything on;", 1))
    result = nginx_test(main_config(tmp_path, site))
    assert result.returncode != 0 and 'unknown directive "gzip_everything"' in result.stderr


def test_the_body_limits_are_the_portals(rendered):
    site = rendered[render.NGINX_SITE].read_text()
    sizes = re.findall(r"client_max_body_size (\d+)([km]?);", site)
    limits = [int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit] for number, unit in sizes]
    # The server's limit, then the foreign SDKs' endpoints' own.
    assert limits == [settings.INGEST_MAX_BODY_BYTES, settings.WIRE_MAX_BODY_BYTES]
    assert settings.INGEST_MAX_BODY_BYTES == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    wire = site[site.index("location ~ ^/((posthog|segment|otlp)/|v1/batch/?$)") :]
    assert "client_max_body_size" in wire[: wire.index("}")]


def test_gzip_is_only_on_for_static_files(rendered):
    site = rendered[render.NGINX_SITE].read_text()
    https = site[site.index("listen 443") :]
    static = https[https.index("location /static/") :]
    assert "gzip on;" in static and https.count("gzip on;") == 1
    assert "gzip off;" in https[: https.index("location /")]
    assert "gunzip" not in site  # request bodies are never inflated here


@pytest.fixture
def proxied_portal(tmp_path, make_key):
    """nginx (the rendered site) in front of gunicorn (the rendered web unit) on loopback ports; yields the
    http and https base URLs and a service key."""
    _, key = make_key()
    gunicorn_port, http_port, https_port = free_port(), free_port(), free_port()
    files = render_into(
        tmp_path / "rendered",
        bind=f"127.0.0.1:{gunicorn_port}",
        upstream=f"127.0.0.1:{gunicorn_port}",
        http_listen=(f"127.0.0.1:{http_port}",),
        https_listen=(f"127.0.0.1:{https_port}",),
    )
    unit = UnitFile(files["skywatch-web.service"])
    database = _database_url_for(connection.settings_dict)
    env = unit_environment(
        unit, files[render.ENV_FILE], **service_overrides(DATABASE_URL=database, WEB_CONCURRENCY="2")
    )
    nginx = ensure_tool("nginx", "nginx")
    config = main_config(tmp_path, files[render.NGINX_SITE])
    web = start_unit(unit, env, tmp_path / "web.log")
    proxy = subprocess.Popen(
        [
            nginx,
            "-c",
            str(config),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    http, https = f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}"
    try:

        def answers() -> bool:
            for name, process, log in (("gunicorn", web, "web.log"), ("nginx", proxy, "error.log")):
                if process.poll() is not None:
                    pytest.fail(f"{name} exited:\n" + (tmp_path / log).read_text(errors="replace")[-3000:])
            try:
                return requests.get(http + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout=60, interval=0.3, message="the portal to answer through nginx")
        yield http, https, key
    finally:
        for process, stop in ((proxy, signal.SIGQUIT), (web, signal.SIGTERM)):
            if process.poll() is None:
                process.send_signal(stop)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def from_portal(response: requests.Response) -> bool:
    """True when the answer came from the portal (JSON, its security headers), not from nginx itself."""
    return "X-Content-Type-Options" in response.headers


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_portal_behind_the_rendered_nginx(proxied_portal, tmp_path):
    from apps.ingest.models import RawEvent

    http, https, key = proxied_portal
    host = {"Host": SERVER_NAME}
    tls = {"verify": False, "timeout": 30, "allow_redirects": False}

    # Probes over plain http, whatever Host the load balancer sends; everything else goes to https.
    probe = requests.get(http + "/healthz", headers={"Host": "10.11.12.13"}, timeout=10)
    assert probe.status_code == 200 and probe.json() == {"status": "ok"}
    ready = requests.get(http + "/readyz", headers={"Host": "10.11.12.13"}, timeout=30)
    assert set(ready.json()["checks"]) == {"database", "broker", "elasticsearch"}
    page = requests.get(http + "/traces/", headers=host, timeout=10, allow_redirects=False)
    assert page.status_code == 301 and page.headers["Location"] == f"https://{SERVER_NAME}/traces/"
    assert not from_portal(page)

    # Over https the portal knows it (X-Forwarded-Proto, BEHIND_PROXY=1): no redirect loop, HSTS sent.
    login = requests.get(https + "/traces/", headers=host, **tls)
    assert login.status_code == 302 and login.headers["Location"].startswith("/login/")
    assert "max-age=31536000" in login.headers["Strict-Transport-Security"]

    # A gzip body reaches the portal as it was sent, and the portal inflates it.
    events = {"batch": [{"event": "through_nginx", "properties": {"i": i}} for i in range(3)]}
    headers = {**host, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    zipped = requests.post(
        https + "/api/v1/batch",
        data=gzip.compress(json.dumps(events).encode()),
        headers={**headers, "Content-Encoding": "gzip"},
        **tls,
    )
    assert zipped.status_code == 202, zipped.text
    assert zipped.json()["accepted"] == 3
    assert RawEvent.objects.filter(event="through_nginx").count() == 3

    # The body limit: exactly 1 MB reaches the portal, one byte more is refused by nginx.
    limit = settings.INGEST_MAX_BODY_BYTES
    at_limit = requests.post(https + "/api/v1/batch", data=b" " * limit, headers=headers, **tls)
    assert from_portal(at_limit), at_limit.text[:300]
    over = requests.post(https + "/api/v1/batch", data=b" " * (limit + 1), headers=headers, **tls)
    assert over.status_code == 413 and not from_portal(over)
    # Foreign SDKs' endpoints take their own, larger limit.
    wire_limit = settings.WIRE_MAX_BODY_BYTES
    wire_at_limit = requests.post(https + "/posthog/batch/", data=b" " * wire_limit, headers=headers, **tls)
    assert from_portal(wire_at_limit), wire_at_limit.text[:300]
    wire_over = requests.post(https + "/posthog/batch/", data=b" " * (wire_limit + 1), headers=headers, **tls)
    assert wire_over.status_code == 413 and not from_portal(wire_over)
    segment_root = requests.post(https + "/v1/batch", data=b" " * wire_limit, headers=headers, **tls)
    assert from_portal(segment_root), segment_root.text[:300]

    # Static files from whitenoise, compressed by nginx, with the portal's headers; pages never compressed.
    gzip_ok = {**host, "Accept-Encoding": "gzip"}
    css = requests.get(https + "/static/css/portal.css", headers=gzip_ok, **tls)
    assert css.status_code == 200 and css.headers["Content-Encoding"] == "gzip"
    assert "default-src 'self'" in css.headers["Content-Security-Policy"]
    plotly = requests.get(https + "/static/vendor/plotly.min.js", headers=gzip_ok, **tls)
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    sign_in = requests.get(https + "/login/", headers=gzip_ok, **tls)
    assert sign_in.status_code == 200 and "Content-Encoding" not in sign_in.headers

    # posthog-js's remote config carries the service key in its path: answered, and never in the access log.
    config = requests.get(https + f"/posthog/array/{key}/config", headers=host, **tls)
    assert config.status_code == 200 and config.json()["hasFeatureFlags"] is False
    access_log = (tmp_path / "access.log").read_text()
    assert "/login/" in access_log  # nginx does log requests
    assert key not in access_log
