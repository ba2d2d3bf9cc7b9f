"""POST /api/v1/annotations with a service key; GET with a person's role."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.accounts.services import personal_token_create
from apps.annotations.models import Annotation
from apps.annotations.services import create_annotation
from apps.ingest.services import service_key_revoke

pytestmark = pytest.mark.django_db

URL = "/api/v1/annotations"
T = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)


def post(api_client, secret: str | None, body, **headers):
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    data = body if isinstance(body, str) else json.dumps(body)
    return api_client.post(URL, data, content_type="application/json", **headers)


def test_a_service_key_posts_an_annotation_stored_with_the_keys_service_and_stage(api_client, deploy_key):
    api_key, secret = deploy_key

    response = post(
        api_client,
        secret,
        # A service named in the body is ignored: the key says who posts.
        {
            "text": "  deploy v2.14.0 (a1b2c3d)  ",
            "timestamp": "2026-11-30T15:05:00+01:00",
            "service": "other",
        },
    )

    assert response.status_code == 201, response.content
    stored = Annotation.objects.get()
    assert (stored.text, stored.timestamp, stored.service, stored.stage, stored.key_prefix) == (
        "deploy v2.14.0 (a1b2c3d)",
        T,
        "checkout",
        "prod",
        api_key.prefix,
    )
    assert response.json() == {
        "id": stored.pk,
        "text": "deploy v2.14.0 (a1b2c3d)",
        "timestamp": "2026-11-30T14:05:00Z",
        "service": "checkout",
        "stage": "prod",
    }


def test_the_key_may_be_sent_as_x_api_key(api_client, deploy_key):
    _, secret = deploy_key

    response = post(
        api_client, None, {"text": "deploy", "timestamp": "2026-11-30T14:05:00Z"}, HTTP_X_API_KEY=secret
    )

    assert response.status_code == 201
    assert Annotation.objects.get().service == "checkout"


def test_without_a_timestamp_the_received_time_is_used(api_client, deploy_key):
    before = timezone.now()

    response = post(api_client, deploy_key[1], {"text": "config reloaded"})

    assert response.status_code == 201
    assert before <= Annotation.objects.get().timestamp <= timezone.now()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"timestamp": "2026-11-30T14:05:00Z"}, "text", "required"),
        ({"text": "", "timestamp": "2026-11-30T14:05:00Z"}, "text", "blank"),
        ({"text": "   \n ", "timestamp": "2026-11-30T14:05:00Z"}, "text", "visible character"),
        ({"text": "x" * 501, "timestamp": "2026-11-30T14:05:00Z"}, "text", "500"),
        ({"text": "bell\x07", "timestamp": "2026-11-30T14:05:00Z"}, "text", "control characters"),
        ({"text": "nul\x00"}, "text", "control characters"),
        ({"text": 42}, "text", "string"),
        ({"text": None}, "text", "null"),
        ({"text": "deploy", "timestamp": "yesterday"}, "timestamp", "ISO-8601"),
        ({"text": "deploy", "timestamp": "2026-11-30T14:05:00"}, "timestamp", "time zone"),
        ({"text": "deploy", "timestamp": "2026-13-30T14:05:00Z"}, "timestamp", "ISO-8601"),
        ({"text": "deploy", "timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp", "out of range"),
        ({"text": "deploy", "timestamp": "9999-12-31T23:59:59Z"}, "timestamp", "out of range"),
        ({"text": "deploy", "timestamp": 1764511500}, "timestamp", "ISO-8601"),
        ({"text": "deploy", "timestamp": None}, "timestamp", "null"),
        (["deploy"], "body", "JSON object"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_nothing_is_stored(
    api_client, deploy_key, body, field, words
):
    response = post(api_client, deploy_key[1], body)

    assert response.status_code == 400, response.content
    assert set(response.json()) == {field}
    assert words in response.json()[field]
    assert Annotation.objects.count() == 0


def test_malformed_json_is_a_400_and_nothing_is_stored(api_client, deploy_key):
    response = post(api_client, deploy_key[1], '{"text": "deploy"')

    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert Annotation.objects.count() == 0


def test_tabs_and_line_breaks_are_kept(api_client, deploy_key):
    response = post(api_client, deploy_key[1], {"text": "deploy v2\n\t- fix checkout"})

    assert response.status_code == 201
    assert Annotation.objects.get().text == "deploy v2\n\t- fix checkout"


def test_no_key_is_401_and_an_unknown_key_is_401(api_client, db):
    assert post(api_client, None, {"text": "deploy"}).status_code == 401
    assert post(api_client, "sk_not_a_key", {"text": "deploy"}).status_code == 401
    assert Annotation.objects.count() == 0


def test_a_revoked_key_is_refused(api_client, deploy_key):
    api_key, secret = deploy_key
    service_key_revoke(api_key=api_key, actor=Actor.command("tests"))

    response = post(api_client, secret, {"text": "deploy"})

    assert response.status_code in (401, 403)
    assert "revoked" in response.json()["detail"]
    assert Annotation.objects.count() == 0


def test_a_person_cannot_post_an_annotation(client_as, make_person):
    client = client_as("admin")

    response = client.post(URL, json.dumps({"text": "deploy"}), content_type="application/json")

    assert response.status_code in (401, 403)
    assert Annotation.objects.count() == 0


def _stored(text: str, at: datetime, service: str = "checkout") -> Annotation:
    return create_annotation(service=service, text=text, timestamp=at, stage="prod")


def test_get_lists_the_annotations_of_the_range_oldest_first(client_as):
    _stored("too early", T - timedelta(days=2))
    later = _stored("second", T + timedelta(hours=1), service="search-api")
    first = _stored("first", T)
    _stored("too late", T + timedelta(days=2))
    client = client_as("product")

    response = client.get(URL, {"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"})

    assert response.status_code == 200
    assert response.json() == {
        "annotations": [
            {
                "id": first.pk,
                "text": "first",
                "timestamp": "2026-11-30T14:05:00Z",
                "service": "checkout",
                "stage": "prod",
            },
            {
                "id": later.pk,
                "text": "second",
                "timestamp": "2026-11-30T15:05:00Z",
                "service": "search-api",
                "stage": "prod",
            },
        ],
        "truncated": False,
    }


def test_get_defaults_to_the_last_seven_days(client_as):
    now = timezone.now()
    _stored("recent", now - timedelta(days=6))
    _stored("old", now - timedelta(days=8))

    response = client_as("support").get(URL)

    assert [a["text"] for a in response.json()["annotations"]] == ["recent"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "soon"}, "from"),
        ({"to": "2026-11-30T00:00:00"}, "to"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00Z"}, "from"),
    ],
)
def test_bad_range_parameters_are_a_400_naming_them(client_as, params, field):
    response = client_as("product").get(URL, params)

    assert response.status_code == 400
    assert set(response.json()) == {field}


@pytest.mark.parametrize(("role", "expected"), [("product", 200), ("support", 200), ("admin", 200)])
def test_get_is_for_people_who_read_charts(client_as, role, expected):
    assert client_as(role).get(URL).status_code == expected


def test_get_refuses_anonymous_callers_and_service_keys(client_as, api_client, deploy_key):
    assert client_as(None).get(URL).status_code in (401, 403)
    assert api_client.get(URL, HTTP_AUTHORIZATION=f"Bearer {deploy_key[1]}").status_code in (401, 403)


def test_get_refuses_a_person_without_a_role(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="correct-horse-battery"))

    assert client.get(URL).status_code == 403


def test_a_personal_token_reads_annotations(api_client, make_person):
    _stored("deploy", timezone.now())
    _, token = personal_token_create(user=make_person("product"), label="script")

    response = api_client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert [a["text"] for a in response.json()["annotations"]] == ["deploy"]


def test_the_schema_documents_both_operations(client_as):
    schema = client_as("support").get("/api/schema/", {"format": "json"}).json()

    operations = schema["paths"]["/api/v1/annotations"]
    assert operations["post"]["operationId"] == "annotations_create"
    assert operations["post"]["security"] == [{"ServiceApiKey": []}, {"ServiceApiKeyHeader": []}]
    assert set(operations["post"]["responses"]) >= {"201", "400", "401", "403"}
    assert operations["get"]["operationId"] == "annotations_list"
    assert {"ServiceApiKey": []} not in operations["get"]["security"]
    assert {"ServiceApiKeyHeader": []} not in operations["get"]["security"]


def test_posting_counts_against_the_keys_rate_like_ingestion(api_client, deploy_key, settings):
    settings.INGEST_RATE_LIMIT = "1/hour"  # an hour's window: two posts rarely straddle its edge

    first = post(api_client, deploy_key[1], {"text": "deploy 1"})
    second = post(api_client, deploy_key[1], {"text": "deploy 2"})

    assert (first.status_code, second.status_code) == (201, 429)
    assert int(second["Retry-After"]) >= 1
    assert [a.text for a in Annotation.objects.all()] == ["deploy 1"]
