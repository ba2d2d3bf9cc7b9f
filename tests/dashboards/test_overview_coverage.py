"""The overview's correlation coverage table: support and admins see it, product-only people do not."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def recent_traffic():
    now = timezone.now()
    for n in range(10):
        RawEventFactory(service="gateway", correlation_id=f"r{n}", timestamp=now - timedelta(minutes=n))
    for n in range(4):
        RawEventFactory(service="legacy-batch", correlation_id="", timestamp=now - timedelta(minutes=n))
    RawEventFactory(service="legacy-batch", correlation_id="own-1", timestamp=now - timedelta(minutes=30))


@pytest.mark.parametrize("role", ["support", "admin"])
def test_support_and_admins_see_the_table_with_low_services_flagged_in_words(
    client, make_person, recent_traffic, role
):
    client.force_login(make_person(role))

    page = client.get("/").content.decode()

    assert "Correlation coverage, last 24 hours" in page
    table = page[page.index('id="coverage"') :]
    gateway = table[table.index("<td>gateway</td>") : table.index("</tr>", table.index("<td>gateway</td>"))]
    legacy = table[
        table.index("<td>legacy-batch</td>") : table.index("</tr>", table.index("<td>legacy-batch</td>"))
    ]
    assert "100.0 %" in gateway and "flagged" not in gateway
    assert "20.0 %" in legacy and "flagged: below 90 %" in legacy


def test_product_people_do_not_see_the_table(client, make_person, recent_traffic):
    client.force_login(make_person("product"))

    page = client.get("/").content.decode()

    assert "Correlation coverage" not in page
    assert "legacy-batch</td>" not in page
