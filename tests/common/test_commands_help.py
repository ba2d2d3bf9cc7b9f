"""Every operator command's --help says what it does, its arguments, and shows an example to copy."""

import subprocess
import sys

import pytest
from django.core.management import load_command_class

from tests.conftest import REPO

COMMANDS = {
    "changepassword": "accounts",
    "create_user": "accounts",
    "create_service_key": "ingest",
    "portal_key": "ingest",
    "apply_retention": "lifecycle",
    "archive_events": "lifecycle",
    "purge_user": "lifecycle",
    "replay_archive": "lifecycle",
    "rebuild_rollups": "pipeline",
    "reindex": "pipeline",
    "retry_dead_letters": "pipeline",
    "seed_demo": "demo",
}


def help_text(name: str) -> str:
    command = load_command_class(f"apps.{COMMANDS[name]}", name)
    return command.create_parser("manage.py", name).format_help()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_ends_with_examples_of_the_command(name):
    text = help_text(name)

    examples = text.split("\nexamples:\n", 1)
    assert len(examples) == 2, text
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert lines and all(f"manage.py {name}" in line for line in lines), lines


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_own_argument_is_explained(name):
    command = load_command_class(f"apps.{COMMANDS[name]}", name)
    parser = command.create_parser("manage.py", name)
    common = {
        "-h",
        "--version",
        "-v",
        "--settings",
        "--pythonpath",
        "--traceback",
        "--no-color",
        "--force-color",
        "--skip-checks",
    }
    unexplained = [
        action.dest
        for action in parser._actions
        if not set(action.option_strings) & common and not action.help
    ]
    assert unexplained == []


def test_help_runs_without_a_database():
    done = subprocess.run(
        [sys.executable, "manage.py", "replay_archive", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://nobody:x@127.0.0.1:1/none"},
    )
    assert done.returncode == 0, done.stderr
    assert "examples:\n  manage.py replay_archive /srv/skywatch-archive" in done.stdout
