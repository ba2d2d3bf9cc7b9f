"""Web and worker processes keep what loading them made out of the garbage collector's full collections."""

import subprocess
import sys

import pytest
from django.conf import settings

SHOW_FROZEN = "import gc; print(gc.get_freeze_count())"


def _frozen_after(setup: str) -> int:
    """Run `setup` in a fresh interpreter; return how many objects the collector then leaves alone."""
    code = f"{setup}\n{SHOW_FROZEN}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=settings.BASE_DIR
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_fresh_interpreter_freezes_nothing_by_itself():
    assert _frozen_after("pass") == 0


@pytest.mark.parametrize(
    "setup",
    [
        "import skywatch_portal.wsgi",
        # What Celery sends in a prefork child once forked, and in a solo worker once ready.
        "import django; django.setup()\n"
        "from skywatch_portal.celery import app\n"
        "from celery.signals import worker_process_init\n"
        "worker_process_init.send(sender=None)",
        "import django; django.setup()\n"
        "from skywatch_portal.celery import app\n"
        "from celery.signals import worker_ready\n"
        "worker_ready.send(sender=None)",
    ],
    ids=["web", "prefork worker child", "solo worker"],
)
def test_loaded_objects_are_frozen(setup):
    assert _frozen_after(setup) > 10_000
