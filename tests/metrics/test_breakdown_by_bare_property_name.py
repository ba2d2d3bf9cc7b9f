"""`breakdown=<prop>` as DESIGN.md writes it: a bare name that is not a column (service, stage, event) is the
property of that name, the same as `prop:<name>`; `prop:` still names a property called like a column."""

from datetime import UTC, datetime

import pytest

from tests.metrics.test_series import stored

pytestmark = pytest.mark.django_db

WINDOW = {"event": "e", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}


@pytest.fixture
def product(client, make_person, make_key):
    at = datetime(2026, 11, 20, 12, tzinfo=UTC).isoformat()
    stored(
        make_key,
        [
            {"event": "e", "timestamp": at, "properties": {"region": "eu", "service": "from-a-property"}},
            {"event": "e", "timestamp": at, "properties": {"region": "us"}},
            {"event": "e", "timestamp": at, "properties": {"region": "eu"}},
        ],
    )
    client.force_login(make_person("product"))
    return client


def totals(response) -> dict[str, int]:
    assert response.status_code == 200, response.content
    return {s["name"]: sum(p["v"] for p in s["points"]) for s in response.json()["series"]}


def test_a_bare_property_name_breaks_a_series_down_as_prop_does(product):
    bare = product.get("/api/v1/metrics/series", {**WINDOW, "breakdown": "region"})
    prefixed = product.get("/api/v1/metrics/series", {**WINDOW, "breakdown": "prop:region"})

    assert totals(bare) == totals(prefixed) == {"eu": 2, "us": 1}


def test_a_column_name_is_the_column_and_prop_names_the_property(product):
    column = product.get("/api/v1/metrics/series", {**WINDOW, "breakdown": "service"})
    prop = product.get("/api/v1/metrics/series", {**WINDOW, "breakdown": "prop:service"})

    assert totals(column) == {"log-shipper": 3}
    assert totals(prop) == {"from-a-property": 1, "(none)": 2}


def test_a_funnel_and_a_points_users_take_a_bare_property_name_too(product):
    funnel = product.get(
        "/api/v1/metrics/funnel",
        {"steps": "e,e", "from": WINDOW["from"], "to": WINDOW["to"], "breakdown": "region"},
    )
    users = product.get(
        "/api/v1/metrics/users",
        {**WINDOW, "breakdown": "region", "value": "eu", "bucket": WINDOW["from"], "interval": "day"},
    )

    assert funnel.status_code == 200, funnel.content
    assert users.status_code == 200, users.content
