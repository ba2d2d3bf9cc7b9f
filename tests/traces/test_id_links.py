"""IDs in URLs are percent-decoded exactly once and links encode them exactly once: a literal `a%2Fb` is
itself, not `a/b`. An ID a path segment cannot carry (a "/", or only dots) travels as a query parameter, and
links made before this (encoded twice) still open their page, by a redirect."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from apps.accounts.models import AuditEntry

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def look_alikes(store_events):
    """A literal "%2F" ID beside the ID with a real slash, for trails and users alike."""
    store_events(
        [
            {"event": "literal_trail", "correlation_id": "x%2Fy", "user_id": "a%2Fb", "timestamp": at(0)},
            {"event": "slashed_trail", "correlation_id": "x/y", "user_id": "a/b", "timestamp": at(1)},
        ]
    )


def test_a_literal_percent_id_sent_encoded_once_is_itself(support_client, trace_backend, look_alikes):
    trail = support_client.get("/traces/x%252Fy/")
    user = support_client.get("/users/a%252Fb/", {"range": "all"})
    api_trail = support_client.get("/api/v1/traces/x%252Fy").json()
    api_user = support_client.get("/api/v1/users/a%252Fb/requests").json()

    assert trail.status_code == 200 and trail.context["correlation_id"] == "x%2Fy"
    assert "literal_trail" in trail.content.decode() and "slashed_trail" not in trail.content.decode()
    assert user.status_code == 200 and user.context["user_id"] == "a%2Fb"
    assert [r.correlation_id for r in user.context["result"].requests] == ["x%2Fy"]
    assert api_trail["correlation_id"] == "x%2Fy" and [e["event"] for e in api_trail["events"]] == [
        "literal_trail"
    ]
    assert api_user["user_id"] == "a%2Fb" and [r["correlation_id"] for r in api_user["requests"]] == ["x%2Fy"]


def test_links_encode_an_id_once(support_client, store_events):
    store_events([{"event": "e", "correlation_id": "50%off", "user_id": "100%", "timestamp": at(0)}])

    html = support_client.get("/traces/50%25off/").content.decode()

    assert 'href="/users/100%25/"' in html
    assert 'href="/api/v1/traces/50%25off?download=1"' in html
    assert 'href="/traces/50%25off/surrounding/?service=' in html
    assert "%2525" not in html


@pytest.mark.parametrize("correlation_id", ["x/surrounding", "../../keys/x", "..", "a//b"])
def test_an_id_a_path_segment_cannot_carry_is_linked_as_a_query_parameter(
    support_client, store_events, correlation_id
):
    store_events(
        [{"event": "opened", "correlation_id": correlation_id, "user_id": correlation_id, "timestamp": at(0)}]
    )
    search = support_client.get("/traces/", {"user_id": correlation_id, "range": "all"}).content.decode()
    [href] = re.findall(r'href="(/traces/-/\?[^"]*)"', search)
    href = href.replace("&amp;", "&")

    assert urlsplit(href).path == "/traces/-/"
    trail = support_client.get(href)
    assert trail.status_code == 200 and trail.context["correlation_id"] == correlation_id
    html = trail.content.decode()
    # The page's own links keep the ID: the user, the surrounding logs, the download.
    [user_href] = set(re.findall(r'href="(/users/[^"]*)"', html))
    user = support_client.get(user_href.replace("&amp;", "&"))
    assert user.status_code == 200 and user.context["user_id"] == correlation_id
    surrounding_href = re.search(r'href="(/traces/[^"]*/surrounding/[^"]*)"', html).group(1)
    surrounding = support_client.get(surrounding_href.replace("&amp;", "&"))
    assert surrounding.status_code == 200 and surrounding.context["correlation_id"] == correlation_id
    assert "opened" in surrounding.content.decode()


def test_a_query_parameter_opens_a_page_only_behind_the_marker(support_client, store_events):
    store_events(
        [
            {"event": "dash", "correlation_id": "-", "timestamp": at(0)},
            {"event": "other", "correlation_id": "req-2", "timestamp": at(1)},
        ]
    )

    dash = support_client.get("/traces/-/")  # an ID that is "-" is itself
    named = support_client.get("/traces/req-2/", {"correlation_id": "-"})  # the path names the trail

    assert dash.context["correlation_id"] == "-"
    assert named.context["correlation_id"] == "req-2"


def test_a_users_page_behind_the_marker_keeps_its_id_in_its_range_form(support_client, store_events):
    store_events([{"event": "opened", "correlation_id": "r-1", "user_id": "a/b", "timestamp": at(0)}])

    html = support_client.get("/users/-/", {"user_id": "a/b", "range": "all"}).content.decode()

    assert '<input type="hidden" name="user_id" value="a/b">' in html


@pytest.mark.parametrize(
    ("old_link", "location"),
    [
        ("/traces/k%252Fl/", "/traces/-/?correlation_id=k%2Fl"),
        ("/traces/50%2525off/", "/traces/50%25off/"),
        ("/users/u%252Fv/?range=all", "/users/-/?user_id=u%2Fv&range=all"),
        (
            "/traces/k%252Fl/surrounding/?service=gateway&at=2026-11-25T10:00:00Z",
            "/traces/-/surrounding/?correlation_id=k%2Fl&service=gateway&at=2026-11-25T10%3A00%3A00Z",
        ),
    ],
)
def test_links_encoded_twice_before_redirect_to_their_page(support_client, store_events, old_link, location):
    store_events(
        [
            {
                "service": "gateway",
                "event": "e",
                "correlation_id": "k/l",
                "user_id": "u/v",
                "timestamp": at(0),
            },
            {"service": "gateway", "event": "e", "correlation_id": "50%off", "timestamp": at(0)},
        ]
    )

    response = support_client.get(old_link)

    assert response.status_code == 302
    assert response["Location"] == location
    assert support_client.get(location).status_code == 200


def test_an_empty_query_parameter_names_no_id(support_client, store_events):
    # `/-/?correlation_id=` (a link cut short, a form sent blank) is the page of the ID "-", never of the
    # empty ID: no page for it can be linked (reverse() refuses it: a 500), and a user page for it listed
    # every request in the range (an empty user ID filters nothing), audited as opened for nobody.
    store_events(
        [
            {"service": "gateway", "event": "anonymous", "correlation_id": "r-1", "timestamp": at(0)},
            {
                "service": "gateway",
                "event": "dash",
                "correlation_id": "-",
                "user_id": "-",
                "timestamp": at(1),
            },
        ]
    )

    surrounding = support_client.get(
        "/traces/-/surrounding/", {"correlation_id": "", "service": "gateway", "at": at(0)}
    )
    user = support_client.get("/users/-/", {"user_id": "", "range": "all"})

    assert surrounding.status_code == 200 and surrounding.context["correlation_id"] == "-"
    assert user.status_code == 200 and user.context["user_id"] == "-"
    assert [r.correlation_id for r in user.context["result"].requests] == ["-"]
    viewed = AuditEntry.objects.filter(action=AuditEntry.USER_VIEWED).latest("pk")
    assert viewed.target == "-"


def test_an_old_link_redirects_to_its_own_id_whatever_its_query_says(support_client, store_events):
    # The old link's path names the trail; a correlation_id in its query meant nothing there, and must not
    # become the ID the redirect opens (the page reads the last of two).
    store_events(
        [
            {"event": "meant", "correlation_id": "k/l", "user_id": "u/v", "timestamp": at(0)},
            {"event": "other", "correlation_id": "other", "user_id": "other", "timestamp": at(1)},
        ]
    )

    trail = support_client.get("/traces/k%252Fl/", {"correlation_id": "other"})
    user = support_client.get("/users/u%252Fv/", {"user_id": "other", "range": "all"})

    assert trail.status_code == user.status_code == 302
    assert trail["Location"] == "/traces/-/?correlation_id=k%2Fl"
    assert user["Location"] == "/users/-/?user_id=u%2Fv&range=all"
    assert support_client.get(trail["Location"]).context["correlation_id"] == "k/l"
