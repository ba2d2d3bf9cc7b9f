"""Support's trace pages as a browser gets them (Django test client): what the form shows is what was
searched, and a parameter the form refuses is said, not silently dropped."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def ago(**delta) -> str:
    return (timezone.now() - timedelta(**delta)).isoformat()


@pytest.fixture
def stored(database_traces, store_events):
    store_events(
        [
            {
                "service": "checkout",
                "event": "paid",
                "correlation_id": "req-3d",
                "user_id": "ada",
                "timestamp": ago(days=3),
            },
            {
                "service": "checkout",
                "event": "paid",
                "correlation_id": "req-60d",
                "user_id": "ada",
                "timestamp": ago(days=60),
            },
        ]
    )


def selected_range(html: str) -> list[str]:
    select = re.search(r'<select name="range"[^>]*>(.*?)</select>', html, flags=re.S).group(1)
    return re.findall(r'<option value="([^"]*)"[^>]*\bselected\b', select)


def test_a_search_link_without_a_range_shows_the_range_it_searched(support_client, stored):
    # A bookmarked or shared search (/traces/?service=checkout) searches the last 7 days...
    response = support_client.get("/traces/", {"service": "checkout"})
    html = response.content.decode()

    assert response.status_code == 200
    assert "req-3d" in html and "req-60d" not in html
    # ...so its range picker must say so: with nothing selected the browser shows (and the next Search
    # sends) the first option, "last 15 minutes".
    assert selected_range(html) == ["7d"]


def test_a_refused_page_number_is_said_on_the_search_page(support_client, stored):
    # An edited or stale link: the page number is refused, and the page must say why it shows nothing.
    response = support_client.get("/traces/", {"service": "checkout", "range": "7d", "page": "0"})
    html = response.content.decode()

    assert "req-3d" not in html
    assert "greater than or equal to 1" in html


def test_a_refused_page_number_on_a_users_page_does_not_widen_the_range(support_client, stored):
    # The range picker says "last 30 days"; a request 60 days old must not be listed under it.
    response = support_client.get("/users/ada/", {"page": "0"})
    html = response.content.decode()

    assert selected_range(html) == ["30d"]
    assert "req-60d" not in html
