"""GET /posthog/array/<key>/config and /config.js as posthog-js asks for them at start-up: PostHog's remote
config with nothing enabled (RemoteConfig in posthog/models/remote_config.py of PostHog/posthog, and its
tests in posthog/api/test/test_remote_config.py), the key in the path checked as capture checks it."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.models import ApiKey, RawEvent
from apps.ingest.services import service_key_revoke
from tests.ingest.openapi_validation import served_document
from tests.wire.conftest import post

pytestmark = pytest.mark.django_db

# PostHog's answer for a project with no flags, surveys, recording, heatmaps, performance or exception
# capture and no site apps, without `token`, `analytics` and `elementsChainAsString` (posthog.py says why).
NOTHING_ENABLED = {
    "supportedCompression": ["gzip", "gzip-js"],
    "hasFeatureFlags": False,
    "captureDeadClicks": False,
    "capturePerformance": False,
    "autocapture_opt_out": False,
    "autocaptureExceptions": False,
    "errorTracking": {"autocaptureExceptions": False, "suppressionRules": []},
    "sessionRecording": False,
    "heatmaps": False,
    "surveys": False,
    "defaultIdentifiedOnly": True,
    "siteApps": [],
}


def test_config_is_posthogs_config_with_nothing_enabled(client, make_key):
    _, key = make_key()

    response = client.get(f"/posthog/array/{key}/config")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOTHING_ENABLED


def test_config_js_files_the_same_config_under_the_key_as_posthogs_script_does(client, make_key):
    _, key = make_key()

    response = client.get(f"/posthog/array/{key}/config.js")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/javascript"
    config = {name: value for name, value in NOTHING_ENABLED.items() if name != "siteApps"}
    assert response.content.decode() == (
        "(function() {\n"
        "  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
        f'  window._POSTHOG_REMOTE_CONFIG["{key}"] = {{\n'
        f"    config: {json.dumps(config)},\n"
        "    siteApps: []\n"
        "  };\n"
        "})();\n"
    )


@pytest.mark.parametrize("tail", ["config/", "config.js/"])
def test_a_trailing_slash_is_read_too(client, make_key, tail):
    _, key = make_key()

    assert client.get(f"/posthog/array/{key}/{tail}").status_code == 200


@pytest.mark.parametrize("name", ["config", "config.js"])
def test_an_unknown_revoked_or_expired_key_is_404_as_posthog_answers_an_unknown_token(
    client, make_key, caplog, name
):
    revoked, revoked_key = make_key()
    expired, expired_key = make_key(service="other")
    service_key_revoke(api_key=revoked, actor=Actor.command("tests"))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    unknown_key = "swk_deadbeef_unknown-key"

    with caplog.at_level(logging.DEBUG):
        answers = [
            client.get(f"/posthog/array/{key}/{name}") for key in (unknown_key, revoked_key, expired_key)
        ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert all(not a.has_header("WWW-Authenticate") for a in answers)
    assert all(a.json() == {"detail": "Not found."} for a in answers)
    # Django logs a 4xx with its path: here that would write the key into the portal's logs.
    assert not [r for r in caplog.records for k in (unknown_key, revoked_key) if k in r.getMessage()]


def test_a_token_posthog_would_refuse_to_read_is_400(client, db):
    response = client.get("/posthog/array/not%20a%20token/config")

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid token"
    assert client.get(f"/posthog/array/{'a' * 201}/config").status_code == 400


def test_asking_for_config_does_not_count_against_the_keys_ingestion_rate(client, make_key, settings):
    settings.INGEST_RATE_LIMIT = "2/min"
    _, key = make_key()

    asked = [client.get(f"/posthog/array/{key}/{name}").status_code for name in ("config", "config.js") * 3]
    sent = [
        post(client, "/posthog/e/", {"token": key, "event": "page_seen", "distinct_id": "u1"}).status_code
        for _ in range(2)
    ]

    assert (asked, sent) == ([200] * 6, [200, 200])
    assert RawEvent.objects.count() == 2


def test_a_post_is_405_and_nothing_is_stored(client, make_key):
    _, key = make_key()

    response = post(client, f"/posthog/array/{key}/config", {"event": "x", "distinct_id": "u1"})

    assert response.status_code == 405
    assert RawEvent.objects.count() == 0


def test_the_remote_config_is_not_in_the_openapi_document(client, make_person):
    client.force_login(make_person("admin"))

    paths = served_document(client)["paths"]

    assert not [path for path in paths if "/array/" in path]
