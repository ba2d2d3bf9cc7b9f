"""Fixtures for the deployment files: rendered into a temporary directory, with the tools that check them."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _load_render():
    # deploy/ is no package: render.py is a script that runs before any virtualenv exists.
    spec = importlib.util.spec_from_file_location("deploy_render", REPO / "deploy" / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


render = _load_render()

_apt_updated = False


def ensure_tool(binary: str, package: str) -> str:
    """Return the path of `binary`, installing the Debian `package` when it is missing and this is root;
    skip the test only when it cannot be installed."""
    global _apt_updated
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{binary} is missing and cannot be installed here (Debian package {package}, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if _apt_updated or subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        _apt_updated = True
        subprocess.run(install, env=env, capture_output=True)
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        pytest.skip(f"{binary} is missing and apt-get could not install {package}")
    return found


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a throwaway certificate and key for `name` (placeholders for the real ones) and return them."""
    openssl = ensure_tool("openssl", "openssl")
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}"]
        + ["-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def render_into(out: Path, **overrides) -> dict[str, Path]:
    """Render every template for this checkout (its own .venv) into `out`; return the files by name."""
    tls = out / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(tls, overrides.get("server_name", "portal.example.com"))
    options = {
        "prefix": REPO,
        "user": "skywatch",
        "group": "skywatch",
        "venv": REPO / ".venv",
        "env_file": out / render.ENV_FILE,
        "bind": "127.0.0.1:8000",
        "upstream": "127.0.0.1:8000",
        "server_name": "portal.example.com",
        "tls_cert": cert,
        "tls_key": key,
    }
    options.update(overrides)
    return {path.name: path for path in render.render(render.RenderOptions(**options), out)}


@pytest.fixture
def rendered(tmp_path) -> dict[str, Path]:
    """The deployment files rendered for this checkout, by file name."""
    if not (REPO / ".venv" / "bin" / "gunicorn").exists():
        pytest.fail("no .venv in this checkout: run `make install-dev`", pytrace=False)
    return render_into(tmp_path / "rendered")


def read_env_file(path: Path) -> dict[str, str]:
    """Return the assignments of a systemd EnvironmentFile= written the plain way (no quotes, no escapes)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            values[name] = value
    return values
