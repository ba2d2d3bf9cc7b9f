"""Every page carries a Content-Security-Policy of our own files only, and no page has an inline script."""

import re

import pytest

pytestmark = pytest.mark.django_db

PAGES = [
    "/login/",
    "/",
    "/traces/",
    "/api/docs/",
    "/admin/",
    "/dashboards/",
    "/dashboards/d/",
    "/keys/",
    "/account/tokens/",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_a_strict_csp_and_no_inline_script(admin_client, path):
    response = admin_client.get(path, follow=True)

    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    html = response.content.decode()
    for opening, body in re.findall(r"(<script\b[^>]*>)(.*?)</script>", html, flags=re.S | re.I):
        if 'type="application/json"' in opening:
            continue  # json_script data read by our static scripts: never executed
        assert not body.strip(), f"inline script on {path}: {body[:80]!r}"
    for opening in re.findall(r"<script\b[^>]*>", html, flags=re.I):
        assert "src=" in opening or 'type="application/json"' in opening, opening
    assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {path}"
    # Scripts and styles come from our own static files, never a CDN (a bare "cdn" check also matched
    # random CSRF tokens).
    for url in re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', html, flags=re.I):
        own = url.startswith("/") and not url.startswith("//")
        assert own or url.startswith("data:"), f"{url} on {path} is not our own file"


def test_production_settings_pass_check_deploy_with_zero_warnings():
    import secrets
    import subprocess
    import sys

    from tests.conftest import REPO, portal_env

    env = portal_env(
        SECURE="1", DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="portal.example.com"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_oversized_form_bodies_are_refused(client, db):
    response = client.post("/login/", {"username": "x" * (2 * 1024 * 1024), "password": "y"})

    assert response.status_code == 400
