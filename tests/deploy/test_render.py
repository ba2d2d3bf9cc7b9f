"""deploy/render.py: every placeholder replaced, list lines repeated, impossible options refused."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

from .conftest import read_env_file, render, render_into


def test_every_file_is_rendered_with_no_placeholder_left(rendered):
    assert sorted(rendered) == sorted([*render.SYSTEMD_UNITS, render.NGINX_SITE, render.ENV_FILE])
    for path in rendered.values():
        assert not render.PLACEHOLDER.search(path.read_text()), path.name
    web = rendered["skywatch-web.service"].read_text()
    assert f"WorkingDirectory={REPO}\n" in web
    assert f"ExecStart={REPO}/.venv/bin/gunicorn skywatch_portal.wsgi:application" in web
    assert "User=skywatch\n" in web


def test_the_env_file_is_private_and_its_secret_key_new_each_time(tmp_path):
    first = render_into(tmp_path / "a")[render.ENV_FILE]
    second = render_into(tmp_path / "b")[render.ENV_FILE]
    assert first.stat().st_mode & 0o777 == 0o600
    keys = [read_env_file(path)["SECRET_KEY"] for path in (first, second)]
    assert keys[0] != keys[1]
    assert len(keys[0]) >= 50


def test_a_line_with_a_list_placeholder_is_repeated_per_value():
    template = "server {\n    listen @L@ ssl;\n    name @N@;\n}\n"
    text = render.render_text(template, {"L": ("443", "[::]:443"), "N": "x"})
    assert text == "server {\n    listen 443 ssl;\n    listen [::]:443 ssl;\n    name x;\n}\n"


def test_an_unknown_placeholder_is_an_error():
    with pytest.raises(render.RenderError, match="t:2: unknown placeholder"):
        render.render_text("ok\nExecStart=@NOPE@\n", {}, name="t")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prefix": Path("/home/ops/skywatch")}, "ProtectHome"),
        ({"prefix": Path("/root")}, "ProtectHome"),
        ({"user": "root"}, "unprivileged"),
        ({"prefix": Path("opt/skywatch")}, "absolute"),
        ({"server_name": "portal.example.com; evil"}, "host name"),
    ],
)
def test_options_that_cannot_work_are_refused(tmp_path, overrides, message):
    with pytest.raises(render.RenderError, match=message):
        render_into(tmp_path, **overrides)


def test_the_script_runs_on_the_standard_library_alone(tmp_path):
    """It runs before the virtualenv exists: the system python3 in isolated mode, no site-packages."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    out, script = tmp_path / "out", REPO / "deploy" / "render.py"
    result = subprocess.run(
        [python, "-I", "-S", str(script), "--prefix", "/opt/skywatch", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "systemd" / "skywatch-worker@.service").exists()
    assert "fill in the <placeholders> of DATABASE_URL" in result.stderr
    nginx = (out / "nginx" / "skywatch.conf").read_text()
    assert "server 127.0.0.1:8000 fail_timeout=0;" in nginx
    assert "listen 443 ssl http2;\n    listen [::]:443 ssl http2;" in nginx
