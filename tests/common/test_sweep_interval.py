"""Beat's sweeper period comes from PIPELINE_SWEEP_INTERVAL_SECONDS (the soak shortens it)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PRINT_PERIOD = (
    "import django; from django.conf import settings; django.setup();"
    "print(settings.CELERY_BEAT_SCHEDULE['pipeline-sweep']['schedule'])"
)


def sweep_period(**env_overrides: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_SWEEP_INTERVAL_SECONDS"}
    env.update(DJANGO_SETTINGS_MODULE="skywatch_portal.settings", **env_overrides)
    done = subprocess.run(
        [sys.executable, "-c", PRINT_PERIOD], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("overrides", "period"), [({}, "60.0"), ({"PIPELINE_SWEEP_INTERVAL_SECONDS": "5"}, "5.0")]
)
def test_the_sweep_period_comes_from_the_environment(overrides, period):
    assert sweep_period(**overrides) == period
