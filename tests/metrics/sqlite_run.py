"""Run the funnel and retention tests named `test_exact_*`, and the explorer's analysis pages, again on SQLite
(the embedded mode), in a child pytest with no database URL, so the same known answers hold on both."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, portal_env

MODULES = (
    "tests/metrics/test_funnel.py",
    "tests/metrics/test_retention.py",
    "tests/dashboards/test_analyses.py",
)


def run_exact_tests_on_sqlite(tmp_path: Path) -> subprocess.CompletedProcess:
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for name in (
        "CELERY_BROKER_URL",
        "ELASTICSEARCH_URL",
        "CACHE_URL",
        "OBSERVATORY_URL",
        "SKYWATCH_REQUIRE_SERVICES",
    ):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "exact or test_analyses",
        *MODULES,
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def run_on_sqlite(tmp_path: Path, keyword: str, *modules: str) -> subprocess.CompletedProcess:
    """Run the tests of `modules` whose names match `keyword` again on SQLite, in a child pytest."""
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for name in (
        "CELERY_BROKER_URL",
        "ELASTICSEARCH_URL",
        "CACHE_URL",
        "OBSERVATORY_URL",
        "SKYWATCH_REQUIRE_SERVICES",
    ):
        env.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", keyword, *modules]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
