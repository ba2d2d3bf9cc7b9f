"""Every read API's 400 is one documented shape, {parameter: what is wrong}, named once in the document:
a generated client then has one ParameterErrors type to handle, not a look-alike class per operation."""

import pytest

from tests.ingest.openapi_validation import response_schema, schema_errors, served_document

pytestmark = pytest.mark.django_db

PARAMETER_ERRORS = {"$ref": "#/components/schemas/ParameterErrors"}
# One refused request per operation whose 400 is a parameter's error.
REFUSED = [
    ("/api/v1/metrics/series", "/api/v1/metrics/series", {"event": "a", "top": "0"}),
    ("/api/v1/metrics/funnel", "/api/v1/metrics/funnel", {"steps": "a"}),
    ("/api/v1/metrics/retention", "/api/v1/metrics/retention", {"start_event": "a"}),
    ("/api/v1/metrics/users", "/api/v1/metrics/users", {"limit": "0"}),
    ("/api/v1/traces/{correlation_id}", "/api/v1/traces/c1", {"download": "maybe"}),
    ("/api/v1/users/{user_id}/requests", "/api/v1/users/u1/requests", {"per_page": "0"}),
    ("/api/v1/coverage", "/api/v1/coverage", {"from": "yesterday"}),
    ("/api/v1/annotations", "/api/v1/annotations", {"to": "yesterday"}),
]


@pytest.fixture
def admin(client, make_person):
    client.force_login(make_person("admin"))
    return client


@pytest.mark.parametrize(("path", "url", "params"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_refused_parameter_is_answered_with_the_one_parameter_errors_schema(admin, path, url, params):
    document = served_document(admin)

    response = admin.get(url, params)

    assert response.status_code == 400
    assert response_schema(document, path, "get", 400) == PARAMETER_ERRORS
    component = document["components"]["schemas"]["ParameterErrors"]
    assert schema_errors(document, component, response.json()) == []


def test_a_refused_annotation_field_is_answered_with_the_same_schema(admin, api_client, make_key):
    _, key = make_key()
    document = served_document(admin)

    response = api_client.post(
        "/api/v1/annotations", {"text": " "}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert response.status_code == 400
    assert response_schema(document, "/api/v1/annotations", "post", 400) == PARAMETER_ERRORS
    assert (
        schema_errors(document, document["components"]["schemas"]["ParameterErrors"], response.json()) == []
    )
