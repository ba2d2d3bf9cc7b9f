"""The OpenAPI document at /api/schema/ names every credential an API takes, as the API takes it: the ingest
endpoints a service key as `Authorization: Bearer` or `X-Api-Key`; the read APIs a person's token or session,
and their 429 with Retry-After."""

import pytest

pytestmark = pytest.mark.django_db

INGESTION = ("/api/v1/batch", "/api/v1/events")
READS = ("/api/v1/traces/{correlation_id}", "/api/v1/users/{user_id}/requests", "/api/v1/metrics/series")


@pytest.fixture
def schema(client, make_person) -> dict:
    client.force_login(make_person("support"))
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_x_api_key_is_a_security_scheme(schema):
    schemes = schema["components"]["securitySchemes"]

    assert schemes["ServiceApiKeyHeader"]["type"] == "apiKey"
    assert schemes["ServiceApiKeyHeader"]["in"] == "header"
    assert schemes["ServiceApiKeyHeader"]["name"] == "X-Api-Key"
    assert (schemes["ServiceApiKey"]["type"], schemes["ServiceApiKey"]["scheme"]) == ("http", "bearer")


@pytest.mark.parametrize("path", INGESTION)
def test_the_ingest_endpoints_take_either_header(schema, path):
    # Alternatives: one requirement object each (either header alone authenticates).
    assert schema["paths"][path]["post"]["security"] == [{"ServiceApiKey": []}, {"ServiceApiKeyHeader": []}]


@pytest.mark.parametrize("path", READS)
def test_the_read_apis_take_no_service_key(schema, path):
    security = schema["paths"][path]["get"]["security"]

    assert {"ServiceApiKeyHeader": []} not in security and {"ServiceApiKey": []} not in security
    assert {"PersonalToken": []} in security


@pytest.mark.parametrize("path", READS)
def test_the_read_apis_document_their_throttle(schema, path):
    answer = schema["paths"][path]["get"]["responses"]["429"]

    assert "Retry-After" in answer["headers"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_declared_header_is_the_one_ingestion_reads(api_client, make_key, schema):
    _, raw = make_key()
    header = schema["components"]["securitySchemes"]["ServiceApiKeyHeader"]["name"]

    response = api_client.post(
        "/api/v1/events",
        {"event": "x"},
        format="json",
        headers={header: raw},
    )

    assert response.status_code == 202
