"""POST /posthog/flags/ and /posthog/decide/ as posthog SDKs call them: no feature flags, in the shape each
version of PostHog's answer has (rust/feature-flags/src/api/types.rs and endpoint.rs in PostHog/posthog), the
project key checked as capture checks it."""

import base64
import json
import uuid
from urllib.parse import quote

import pytest

from apps.ingest.models import RawEvent
from tests.wire.conftest import post

pytestmark = pytest.mark.django_db

# What PostHog answers when it holds no configuration for the project (ConfigResponse::fallback).
CONFIG = {
    "hasFeatureFlags": False,
    "supportedCompression": ["gzip", "gzip-js"],
    "sessionRecording": False,
    "surveys": False,
    "heatmaps": False,
    "capturePerformance": False,
    "autocaptureExceptions": False,
    "isAuthenticated": False,
    "toolbarParams": {},
    "config": {"enable_collect_everything": True},
}
FLAGS_V2 = {"errorsWhileComputingFlags": False, "flags": {}}
FLAGS_V1 = {"errorsWhileComputingFlags": False, "featureFlags": {}, "featureFlagPayloads": {}}


def ask(client, path, key, **fields):
    return post(client, path, {"api_key": key, "distinct_id": "user-1", **fields})


def without_ids(answer: dict) -> dict:
    """The answer without the two fields that differ each time, checked for their type."""
    answer = dict(answer)
    assert uuid.UUID(answer.pop("requestId"))
    assert isinstance(answer.pop("evaluatedAt"), int)
    return answer


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?v=4", FLAGS_V2),  # posthog-python
        ("?v=2", FLAGS_V2),  # posthog-node
        ("?v=2&config=true", {**FLAGS_V2, **CONFIG}),  # posthog-js
        ("", {**FLAGS_V2, **CONFIG}),  # neither: PostHog answers its latest, with the config
        ("?v=1", FLAGS_V1),
        ("?v=x", FLAGS_V1),
        ("?config=true", {**FLAGS_V1, **CONFIG}),
    ],
)
def test_flags_answers_no_flags_in_the_shape_of_the_version_asked(client, make_key, query, expected):
    _, key = make_key()

    response = ask(client, f"/posthog/flags/{query}", key)

    assert response.status_code == 200, response.content
    assert without_ids(response.json()) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"featureFlags": [], **CONFIG}),
        ("?v=2", {"featureFlags": {}, **CONFIG}),
        ("?v=3", {**FLAGS_V1, **CONFIG}),
        ("?v=4", {**FLAGS_V2, **CONFIG}),
    ],
)
def test_decide_answers_no_flags_in_the_shape_of_its_version(client, make_key, query, expected):
    _, key = make_key()

    response = ask(client, f"/posthog/decide/{query}", key)

    assert response.status_code == 200, response.content
    assert without_ids(response.json()) == expected


def test_the_key_may_be_token_as_posthog_node_and_posthog_js_send_it(client, make_key):
    _, key = make_key()

    response = post(client, "/posthog/flags/?v=2", {"token": key, "distinct_id": "u1", "groups": {}})

    assert response.status_code == 200
    assert response.json()["flags"] == {}


def test_posthog_js_base64_form_body_is_read(client, make_key):
    _, key = make_key()
    body = {"token": key, "distinct_id": "u1", "person_properties": {"name": "Zoë"}}
    form = "data=" + quote(base64.b64encode(json.dumps(body).encode()).decode(), safe="")

    response = post(
        client,
        "/posthog/flags/?v=2&config=true&compression=base64&ver=1.300.0&_=1764900000000",
        raw=form,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200, response.content
    assert response.json()["supportedCompression"] == ["gzip", "gzip-js"]


@pytest.mark.parametrize("path", ["/posthog/flags/?v=4", "/posthog/decide/?v=3"])
def test_a_wrong_or_missing_key_is_401_as_posthog_answers_and_nothing_is_stored(client, make_key, path):
    make_key()

    wrong = ask(client, path, "swk_deadbeef_wrong")
    missing = post(client, path, {"distinct_id": "u1"})

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json()["detail"] and wrong["WWW-Authenticate"]
    assert RawEvent.objects.count() == 0


def test_a_get_is_405(client, db):
    assert client.get("/posthog/flags/?v=2").status_code == 405


def test_a_body_that_is_not_an_object_is_400(client, make_key):
    make_key()

    response = post(client, "/posthog/flags/?v=2", [1, 2])

    assert response.status_code == 400
