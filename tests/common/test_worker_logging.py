"""A Celery worker logs through the portal's handlers, as the web does: JSON lines with service and stage,
past the credential filter. Celery used to replace those handlers with a plain-text one of its own."""

import json

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_workers_log_lines_are_the_portals_json_lines(start_worker):
    worker = start_worker(SERVICE_NAME="portal-worker", STAGE="prod")

    ready = next(line for line in worker.log_text().splitlines() if "ready." in line)
    record = json.loads(ready)  # Celery's own "[time: INFO/MainProcess] … ready." is not JSON
    assert (record["service"], record["stage"]) == ("portal-worker", "prod")
    assert record["message"].endswith("ready.")
