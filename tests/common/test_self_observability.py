"""The portal ships its own log lines to itself, with correlation IDs, as the service skywatch-portal."""

import pytest
import requests
from django.db import connection

from apps.ingest.models import RawEvent
from tests.conftest import _database_url_for, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_portals_own_log_lines_join_its_trace_viewer(
    start_portal, make_key, make_person, client, settings
):
    _, key = make_key(service="skywatch-portal", stage="dev")
    port = free_port()
    server = start_portal(
        port=port,
        DATABASE_URL=_database_url_for(connection.settings_dict),
        CELERY_BROKER_URL="",  # in-process processing: the trail is readable as soon as it is stored
        ELASTICSEARCH_URL="",
        OBSERVATORY_URL=f"http://127.0.0.1:{port}",
        OBSERVATORY_API_KEY=key,
    )

    response = requests.get(
        server.url + "/no-such-page/", headers={"X-Correlation-ID": "support-case-77"}, timeout=10
    )

    assert response.status_code == 404
    assert response.headers["X-Correlation-ID"] == "support-case-77"
    wait_for(
        lambda: RawEvent.objects.filter(correlation_id="support-case-77").exists(),
        timeout=20,
        message="the portal's own log line to arrive",
    )
    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    client.force_login(make_person("support"))
    trail = client.get("/api/v1/traces/support-case-77").json()["events"]
    assert [(e["service"], e["type"], e["level"]) for e in trail] == [("skywatch-portal", "log", "warning")]
    assert "Not Found: /no-such-page/" in trail[0]["message"]
    assert trail[0]["properties"]["logger"] == "django.request"
