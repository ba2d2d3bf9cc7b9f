"""The portal logs JSON lines on stdout with service, stage and correlation_id."""

import json
import subprocess
import sys

from tests.conftest import REPO, portal_env

LOG_ONE_LINE = """
import logging, django
django.setup()
from observatory import correlation
with correlation.use("cid-from-test"):
    logging.getLogger("apps.example").warning("tile %s missing", "1d3x5", extra={"tile": "1d3x5"})
"""


def test_log_lines_are_json_with_service_stage_and_correlation_id():
    done = subprocess.run(
        [sys.executable, "-c", LOG_ONE_LINE],
        cwd=REPO,
        env=portal_env(SERVICE_NAME="portal-eu", STAGE="prod"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["message"] == "tile 1d3x5 missing"
    assert line["level"] == "warning"
    assert (line["service"], line["stage"], line["correlation_id"]) == ("portal-eu", "prod", "cid-from-test")
    assert line["tile"] == "1d3x5"
