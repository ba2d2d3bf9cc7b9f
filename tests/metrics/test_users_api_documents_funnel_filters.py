"""GET /api/v1/metrics/users with `steps` lists a funnel step's users under the funnel's filters, `service`
and `stage` among them: the document names them, so a client generated from it can ask for the users of
the very step /api/v1/metrics/funnel counted; without `steps` they filter nothing and are refused."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
FUNNEL = {
    "steps": "search_made,report_exported",
    "from": (T - timedelta(hours=1)).isoformat(),
    "to": (T + timedelta(hours=5)).isoformat(),
}


@pytest.fixture
def product(client, make_person):
    client.force_login(make_person("product"))
    return client


@pytest.fixture
def two_services():
    """u1 and u2 search on web (u1 exports too), u3 searches on app, all at stage prod; u4 at stage dev."""
    for user, service, stage in (("u1", "web", "prod"), ("u2", "web", "prod"), ("u3", "app", "prod")):
        RawEventFactory(user_id=user, event="search_made", timestamp=T, service=service, stage=stage)
    RawEventFactory(user_id="u4", event="search_made", timestamp=T, service="web", stage="dev")
    RawEventFactory(user_id="u1", event="report_exported", timestamp=T + timedelta(minutes=5), service="web")


def listed(client, **params) -> list[str]:
    response = client.get("/api/v1/metrics/users", {**FUNNEL, "step": "1", **params})
    assert response.status_code == 200, response.content
    return sorted(user["user_id"] for user in response.json()["users"])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("service", "web", ["u1", "u2", "u4"]), ("stage", "dev", ["u4"])],
)
def test_a_funnel_steps_users_under_its_service_or_stage_filter_are_documented(
    product, two_services, name, value, expected
):
    funnel = product.get("/api/v1/metrics/funnel", {**FUNNEL, name: value}).json()
    document = product.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    documented = {p["name"] for p in document["paths"]["/api/v1/metrics/users"]["get"]["parameters"]}

    assert listed(product, **{name: value}) == expected
    assert funnel["steps"][0]["count"] == len(expected)
    assert name in documented


@pytest.mark.parametrize("name", ["service", "stage"])
def test_a_series_points_users_refuse_a_funnel_filter_instead_of_ignoring_it(product, two_services, name):
    response = product.get(
        "/api/v1/metrics/users",
        {"event": "search_made", "from": FUNNEL["from"], "to": FUNNEL["to"], name: "web"},
    )

    assert response.status_code == 400
    assert "steps" in response.json()
