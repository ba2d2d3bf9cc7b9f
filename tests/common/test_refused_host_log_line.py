"""A request for a host name the portal does not serve is refused (400) with one warning line, not an error
with a traceback: anyone can send one, and the portal ships its own error lines into its events."""

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_a_refused_host_is_one_warning_line_without_a_traceback(client, caplog):
    caplog.set_level(logging.INFO)

    response = client.get("/healthz", HTTP_HOST="evil.example")

    assert response.status_code == 400
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None and not record.exc_text
    assert "evil.example" in record.getMessage()
