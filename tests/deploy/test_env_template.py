"""The environment file template names every setting the portal reads, with production values.

The names come from the source (settings.py, and the observatory client the portal runs in-process to ship
its own log lines), so a setting added there without a line here fails this test.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

from .conftest import read_env_file, render
from .unitfile import UnitFile

TEMPLATE = REPO / "deploy" / "templates" / render.ENV_FILE
# Read by the units and gunicorn, not by settings.py.
PROCESS_VARIABLES = {"WEB_CONCURRENCY", "CELERY_WORKER_CONCURRENCY", "FORWARDED_ALLOW_IPS"}
ENV_READERS = {"env_bool", "env_int", "env_list", "env_str", "env_level", "_env", "getenv"}


def environment_names(path: Path) -> set[str]:
    """Return every variable name a module reads: os.environ.get/[...], os.getenv and the env_* helpers."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            on_environ = isinstance(func, ast.Attribute) and ast.unparse(func.value) == "os.environ"
            if (on_environ and called == "get") or called in ENV_READERS:
                names.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            if isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
    return names


def portal_environment_names() -> set[str]:
    return (
        environment_names(REPO / "skywatch_portal" / "settings.py")
        | environment_names(REPO / "observatory" / "config.py")
        | environment_names(REPO / "observatory" / "logging.py")
    )


def template_lines() -> list[str]:
    return TEMPLATE.read_text().splitlines()


def template_names() -> list[str]:
    return [line.split("=", 1)[0] for line in template_lines() if line and not line.startswith("#")]


def test_the_source_parser_finds_what_settings_reads():
    names = environment_names(REPO / "skywatch_portal" / "settings.py")
    assert {"SECRET_KEY", "DATABASE_URL", "CACHE_URL", "BEHIND_PROXY", "ALLOWED_HOSTS"} <= names
    assert {"INGEST_NODE", "CSRF_TRUSTED_ORIGINS", "LOG_LEVEL"} <= names
    assert {"DATABASE_CONNECT_TIMEOUT", "PERSONAL_TOKEN_CACHE_SECONDS", "PORTAL_SHIP_LOG_LEVEL"} <= names
    assert "OBSERVATORY_SYNC" in portal_environment_names()
    assert len(names) >= 36  # every one of them in settings.py as this test was written


def test_every_setting_read_from_the_environment_is_in_the_template():
    missing = portal_environment_names() - set(template_names())
    assert not missing, f"add these to {TEMPLATE.relative_to(REPO)}: {sorted(missing)}"


def test_the_template_names_nothing_the_portal_does_not_read():
    stale = set(template_names()) - portal_environment_names() - PROCESS_VARIABLES
    assert not stale, f"nothing reads {sorted(stale)}"
    assert len(template_names()) == len(set(template_names())), "a name set twice"


def test_the_process_variables_are_used_by_the_units_and_gunicorn():
    units = "".join((REPO / "deploy" / "templates" / name).read_text() for name in render.SYSTEMD_UNITS)
    assert "--workers ${WEB_CONCURRENCY}" in units
    assert "--concurrency ${CELERY_WORKER_CONCURRENCY}" in units
    import gunicorn.config

    assert 'os.environ.get("FORWARDED_ALLOW_IPS"' in Path(gunicorn.config.__file__).read_text()


def test_each_setting_has_a_one_line_comment_and_plain_systemd_syntax():
    lines = template_lines()
    for number, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'$`\\]*", line), f"not plain NAME=value: {line!r}"
        assert lines[number - 1].startswith("# ") and not lines[number - 1].startswith("# ---"), (
            f"{line.split('=')[0]} has no comment line of its own"
        )


def test_no_comment_is_left_without_its_setting():
    """A comment block ends on the setting it describes (one whose setting went stays behind otherwise)."""
    lines = template_lines()
    body = lines[lines.index("") + 1 :]  # after the file's own header
    for number, line in enumerate(body):
        if line.startswith("# ") and not line.startswith("# ---"):
            following = next((later for later in body[number:] if not later.startswith("# ")), "")
            assert following, f"no setting after the comment {line!r}"


def test_production_values(rendered):
    values = read_env_file(rendered[render.ENV_FILE])
    assert values["DEBUG"] == "0" and values["SECURE"] == "1" and values["BEHIND_PROXY"] == "1"
    assert values["ALLOWED_HOSTS"] == "portal.example.com"
    assert values["STAGE"] == "prod"
    # Throttle counters, login lockouts and token revocation must be shared by every process.
    assert values["CACHE_URL"].startswith("redis://")
    assert values["CACHE_URL"] != values["CELERY_BROKER_URL"]
    assert values["DATABASE_URL"].startswith("postgres://")
    assert values["ELASTICSEARCH_URL"].startswith("https://")
    placeholders = {name for name, value in values.items() if "<" in value}
    assert placeholders == {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "ELASTICSEARCH_URL"}


def test_the_rendered_values_pass_djangos_deployment_checks(rendered):
    """`manage.py check --deploy` with the production file (placeholders filled) finds nothing to warn of."""
    values = read_env_file(rendered[render.ENV_FILE])
    values = {name: re.sub(r"<[^>]+>", "filled-in", value) for name, value in values.items()}
    web = UnitFile(rendered["skywatch-web.service"])
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **web.default_environment(), **values}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
