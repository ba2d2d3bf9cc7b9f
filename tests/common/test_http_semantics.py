"""HTTP semantics as an API consumer and a privacy reviewer see them: caching of personal answers, JSON
errors everywhere under /api/, download file names, and methods on the foreign-SDK endpoints."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.test import Client

from apps.accounts.services import personal_token_create

pytestmark = pytest.mark.django_db

AT = datetime.now(tz=UTC) - timedelta(minutes=5)


def _event(**fields) -> dict:
    return {
        "type": "log",
        "event": "request",
        "level": "info",
        "message": "user u-17 opened scene 42",
        "timestamp": AT.isoformat(),
        **fields,
    }


@pytest.fixture
def support_token(make_person) -> str:
    _, raw = personal_token_create(user=make_person("support"), label="rev3")
    return raw


@pytest.fixture
def product_token(make_person) -> str:
    _, raw = personal_token_create(user=make_person("product"), label="rev3")
    return raw


def _not_stored(response) -> None:
    """Assert no browser or shared cache may keep the answer."""
    directives = {d.strip().split("=")[0] for d in response.get("Cache-Control", "").lower().split(",")}
    assert {"no-store", "private"} <= directives, response.get("Cache-Control")


def _varies_on(response, header: str) -> None:
    varies = {v.strip().lower() for v in response.get("Vary", "").split(",")}
    assert header.lower() in varies, response.get("Vary")


# --- Personal answers are never cached -------------------------------------------------------------------


def test_trail_api_answer_with_log_lines_is_kept_from_caches(store_events, support_token):
    store_events([_event(user_id="u-17", correlation_id="cid-cache-1")])
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {support_token}"}

    answer = client.get("/api/v1/traces/cid-cache-1", **auth)
    download = client.get("/api/v1/traces/cid-cache-1?download=true", **auth)

    assert answer.status_code == download.status_code == 200
    assert json.loads(answer.content)["events"][0]["user_id"] == "u-17"
    for response in (answer, download):
        _not_stored(response)
        _varies_on(response, "Authorization")  # the answer depends on the bearer token


def test_user_requests_api_answer_is_kept_from_caches(store_events, support_token):
    store_events([_event(user_id="u-17", correlation_id="cid-cache-2")])

    response = Client().get("/api/v1/users/u-17/requests", HTTP_AUTHORIZATION=f"Bearer {support_token}")

    assert response.status_code == 200
    assert json.loads(response.content)["requests"][0]["correlation_id"] == "cid-cache-2"
    _not_stored(response)
    _varies_on(response, "Authorization")


def test_metrics_users_api_answer_with_user_ids_is_kept_from_caches(aggregate_events, product_token):
    aggregate_events([_event(type="metric", event="scene_opened", user_id="u-17", correlation_id="cid-3")])
    start = (AT - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (AT + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    response = Client().get(
        "/api/v1/metrics/users",
        {"event": "scene_opened", "from": start, "to": end},
        HTTP_AUTHORIZATION=f"Bearer {product_token}",
    )

    assert response.status_code == 200
    assert [u["user_id"] for u in json.loads(response.content)["users"]] == ["u-17"]
    _not_stored(response)
    _varies_on(response, "Authorization")


def test_session_api_answer_is_kept_from_caches(store_events, make_person):
    store_events([_event(user_id="u-17", correlation_id="cid-cache-4")])
    client = Client()
    client.force_login(make_person("support"))

    response = client.get("/api/v1/traces/cid-cache-4")

    assert response.status_code == 200
    _not_stored(response)


@pytest.mark.parametrize(
    "url",
    [
        "/traces/cid-cache-5/",
        "/users/u-17/",
        "/traces/?text=opened+scene",
        "/dashboards/users/?event=request",
    ],
)
def test_support_pages_with_personal_data_are_kept_from_caches(store_events, make_person, url):
    store_events([_event(user_id="u-17", correlation_id="cid-cache-5")])
    client = Client()
    client.force_login(make_person("admin"))

    response = client.get(url)

    assert response.status_code == 200, url
    _not_stored(response)


def test_csv_download_is_kept_from_caches(make_person):
    client = Client()
    client.force_login(make_person("product"))

    response = client.get("/dashboards/", {"event": "search_made", "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    _not_stored(response)


# --- Every error under /api/ is JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/no-such-endpoint",
        "/api/v1/metrics/series/",  # a trailing slash the API does not have
        "/api/v1/metrics/ser%00ies",  # a NUL in the path
        "/api/v1/%FF%FE",  # percent-encoding that is no UTF-8
        "/api/v2/traces/abc",
    ],
)
def test_unknown_api_address_answers_json_404(support_token, path):
    response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {support_token}")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json"), response.content[:80]
    assert isinstance(json.loads(response.content)["detail"], str)


def test_api_request_with_a_bad_host_answers_json_400():
    response = Client().get("/api/v1/metrics/series", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json"), response.content[:80]
    assert isinstance(json.loads(response.content)["detail"], str)


def test_method_not_allowed_at_the_api_docs_answers_json_405(make_person):
    client = Client()
    client.force_login(make_person("product"))

    response = client.post("/api/docs/")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(json.loads(response.content)["detail"], str)


# --- Downloads ------------------------------------------------------------------------------------------


def test_trace_download_of_a_non_ascii_id_names_the_file_per_rfc_6266(store_events, support_token):
    cid = "commande-été-注文"
    store_events([_event(user_id="u-17", correlation_id=cid)])

    response = Client().get(
        f"/api/v1/traces/{quote(cid)}?download=true", HTTP_AUTHORIZATION=f"Bearer {support_token}"
    )

    assert response.status_code == 200
    header = response["Content-Disposition"]
    assert header.isascii(), header  # no raw Latin-1 bytes, no RFC 2047 =?utf-8?b?…?= word
    assert header.startswith("attachment; ")
    assert 'filename="trace-commande-' in header  # an ASCII fallback for old clients
    assert f"filename*=UTF-8''{quote(f'trace-{cid}.json', safe='')}" in header


# --- Methods on the foreign-SDK endpoints ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/posthog/batch/", "/posthog/capture/", "/segment/v1/batch", "/v1/batch", "/segment/v1/track"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_other_methods_than_post_on_sdk_endpoints_are_405(path, method):
    response = Client().generic(method, path)

    assert response.status_code == 405, response.content[:120]
    assert "POST" in response["Allow"]


def test_every_portal_api_operation_documents_its_406_for_an_accept_it_cannot_answer(admin_client, client):
    paths = json.loads(admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").content)["paths"]
    operations = [
        (path, method)
        for path, item in paths.items()
        if path.startswith("/api/v1/")
        for method in item
        if method in ("get", "post")
    ]
    assert len(operations) >= 10, operations

    for path, method in operations:
        url = path.replace("{correlation_id}", "c-1").replace("{user_id}", "u-1")
        # Content negotiation comes before authentication, so no credentials are needed to see it.
        answer = getattr(client, method)(url, HTTP_ACCEPT="application/xml")

        assert answer.status_code == 406, (method, path, answer.status_code)
        assert answer["Content-Type"] == "application/json"
        assert "Accept" in answer.json()["detail"]
        documented = paths[path][method]["responses"]["406"]
        assert documented["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
