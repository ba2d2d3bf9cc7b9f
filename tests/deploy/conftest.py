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


def unit_environment(unit, env_file: Path | None = None, **overrides: str) -> dict[str, str]:
    """Return the environment systemd would give the unit's command (a clean one: PATH and LANG, the unit's
    Environment=, then the env file), with a test's overrides on top."""
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **unit.default_environment()}
    if env_file is not None:
        env.update(read_env_file(env_file))
    env.update(overrides)
    return env


def service_overrides(**more: str) -> dict[str, str]:
    """Return the test run's service URLs in place of the env file's <placeholders>."""
    values = {
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", ""),
        "ELASTICSEARCH_URL": os.environ.get("ELASTICSEARCH_URL", ""),
        "ELASTICSEARCH_INDEX_PREFIX": os.environ.get("ELASTICSEARCH_INDEX_PREFIX", "obs-events"),
        # One process per test: its memory is the cache (the broker's Redis database stays the broker's).
        "CACHE_URL": "",
    }
    values.update(more)
    return values


def start_unit(unit, env: dict[str, str], log_path: Path, key: str = "ExecStart") -> subprocess.Popen:
    """Start the unit's command as systemd would (its working directory, this environment), in a session of
    its own so a test can clean up every process it left."""
    for name in unit.values("Service", "RuntimeDirectory"):
        # systemd makes it (under /run) and names it in $RUNTIME_DIRECTORY; here beside the log.
        runtime = log_path.parent / "run" / name
        runtime.mkdir(parents=True, exist_ok=True)
        env = {**env, "RUNTIME_DIRECTORY": str(runtime)}
    log = open(log_path, "wb")  # the child holds it; closed here at once
    try:
        return subprocess.Popen(
            unit.command(key, env),
            cwd=unit.value("Service", "WorkingDirectory"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def stop_main_process(process: subprocess.Popen, timeout: float) -> int:
    """Send SIGTERM to the main process only (KillMode=mixed) and return its exit code; SIGKILL the session
    and fail when it does not exit in time."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        pytest.fail(f"{process.args[0]} did not stop within {timeout}s of SIGTERM")
