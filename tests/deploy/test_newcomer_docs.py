"""What a newcomer does by the README: the Makefile targets it names, its table of environment variables."""

import os
import re
import subprocess

from tests.conftest import REPO

from .test_env_template import PROCESS_VARIABLES, portal_environment_names

README = REPO / "README.md"
SERVICE_URLS = ("DATABASE_URL", "CELERY_BROKER_URL", "ELASTICSEARCH_URL")


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def make_dry_run(*args: str) -> str:
    env = {name: value for name, value in os.environ.items() if name != "PORT"}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_table_explains_every_variable_the_portal_reads():
    table = readme_section("Environment variables")
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    missing = portal_environment_names() - documented
    assert not missing, f"README.md, Environment variables: no row for {sorted(missing)}"
    assert not documented & PROCESS_VARIABLES, "the units' variables are in Production"


def test_make_run_serves_on_the_port_it_is_given():
    assert "PORT=8123 scripts/run.sh" in make_dry_run("run", "PORT=8123")
    assert "PORT=8000 scripts/run.sh" in make_dry_run("run")
    lines = (REPO / "scripts" / "run.sh").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.startswith("#"))
    # The server, the address the portal ships its own log lines to, and the address it prints.
    assert not re.search(r"127\.0\.0\.1:8000", script), "run.sh names port 8000 instead of $PORT"
    assert script.count("127.0.0.1:$PORT") == 3


def services_env_as_the_worker_gets_it(**environment: str) -> dict[str, str]:
    """Return the URLs `make worker` and `make beat` run with, given the caller's environment."""
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_URLS}
    result = subprocess.run(
        ["scripts/with-services.sh", "env"],
        cwd=REPO,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {name: values.get(name, "") for name in SERVICE_URLS}


def test_make_worker_and_beat_keep_the_urls_the_environment_sets():
    """A newcomer who exported their own DATABASE_URL gets a worker on that database, not on the default."""
    services = subprocess.run(
        ["scripts/services.sh", "env"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    defaults = dict(line.removeprefix("export ").split("=", 1) for line in services.splitlines())
    own = "postgres://me:secret@127.0.0.1:5432/mine"
    urls = services_env_as_the_worker_gets_it(DATABASE_URL=own, ELASTICSEARCH_URL="")
    assert urls["DATABASE_URL"] == own != defaults["DATABASE_URL"]
    # What the environment leaves unset (or empty) comes from scripts/services.sh env.
    assert urls["CELERY_BROKER_URL"] == defaults["CELERY_BROKER_URL"]
    assert urls["ELASTICSEARCH_URL"] == defaults["ELASTICSEARCH_URL"]
    for target in ("worker", "beat"):
        assert "scripts/with-services.sh .venv/bin/celery -A skywatch_portal" in make_dry_run(target)


def test_make_beat_keeps_its_schedule_out_of_the_checkout():
    assert "--schedule .cache/celerybeat-schedule" in make_dry_run("beat")
