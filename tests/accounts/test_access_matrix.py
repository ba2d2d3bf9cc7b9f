"""Who may open what: every page and API endpoint for every kind of caller; no unexpected 2xx."""

import json

import pytest

from apps.accounts.services import personal_token_create

pytestmark = pytest.mark.django_db

CALLERS = ("anonymous", "service_key", "support", "product", "admin", "support_token", "product_token")
PEOPLE = ("support", "product", "admin")
SIGNED_IN = PEOPLE + ("support_token", "product_token")
SUPPORT = ("support", "admin", "support_token")
PRODUCT = ("product", "admin", "product_token")

# (method, path, body, callers that may get a 2xx). Pages only take sessions; read APIs take tokens too.
MATRIX = [
    ("GET", "/healthz", None, CALLERS),
    ("GET", "/", None, PEOPLE),
    ("GET", "/traces/", None, ("support", "admin")),
    ("GET", "/traces/req-alice/", None, ("support", "admin")),
    ("GET", "/traces/req-bob/", None, ("support", "admin")),  # another user's trail: support's job
    (
        "GET",
        "/traces/req-alice/surrounding/?service=gateway&at=2026-11-25T10:00:00%2B00:00",
        None,
        ("support", "admin"),
    ),
    ("GET", "/users/alice/", None, ("support", "admin")),
    ("GET", "/users/bob/", None, ("support", "admin")),
    ("GET", "/api/v1/traces/req-alice", None, SUPPORT),
    ("GET", "/api/v1/users/bob/requests", None, SUPPORT),
    ("GET", "/api/v1/metrics/series?event=search", None, PRODUCT),
    ("GET", "/api/v1/metrics/users?event=search", None, PRODUCT),
    ("GET", "/dashboards/", None, ("product", "admin")),
    ("GET", "/dashboards/?event=search&format=csv", None, ("product", "admin")),
    ("GET", "/dashboards/d/", None, ("product", "admin")),
    ("GET", "/dashboards/users/?event=search", None, ("product", "support", "admin")),
    ("GET", "/keys/", None, ("admin",)),
    ("POST", "/keys/{prefix}/rotate/", {"grace": "1h"}, ("admin",)),
    ("GET", "/account/tokens/", None, PEOPLE),
    ("GET", "/admin/", None, ("admin",)),
    ("GET", "/admin/accounts/auditentry/", None, ("admin",)),
    ("GET", "/admin/ingest/rawevent/", None, ("admin",)),
    ("GET", "/api/schema/", None, SIGNED_IN),
    ("GET", "/api/docs/", None, PEOPLE),
    ("POST", "/api/v1/events", {"event": "x"}, ("service_key",)),
    ("POST", "/api/v1/batch", [{"event": "x"}], ("service_key",)),
    ("POST", "/keys/{prefix}/revoke/", None, ()),  # last: it revokes the key; admins get a 302 back
]


@pytest.fixture
def callers(make_person, make_key, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "search",
                "correlation_id": "req-alice",
                "user_id": "alice",
                "timestamp": "2026-11-25T10:00:00Z",
            },
            {
                "service": "gateway",
                "event": "search",
                "correlation_id": "req-bob",
                "user_id": "bob",
                "timestamp": "2026-11-25T10:00:00Z",
            },
        ]
    )
    people = {role: make_person(role) for role in PEOPLE}
    api_key, service_key = make_key(service="gateway")
    return {
        "people": people,
        "service_key": service_key,
        "prefix": api_key.prefix,
        "support_token": personal_token_create(user=people["support"])[1],
        "product_token": personal_token_create(user=people["product"])[1],
    }


def request_as(client, callers, caller: str, method: str, path: str, body):
    client.logout()
    headers = {}
    if caller in PEOPLE:
        client.force_login(callers["people"][caller])
    elif caller in ("service_key", "support_token", "product_token"):
        headers["HTTP_AUTHORIZATION"] = f"Bearer {callers[caller]}"
    path = path.format(prefix=callers["prefix"])
    if method == "GET":
        return client.get(path, **headers)
    if path.startswith("/api/"):
        return client.generic("POST", path, json.dumps(body), content_type="application/json", **headers)
    return client.post(path, body or {}, **headers)


def test_no_caller_gets_a_2xx_it_should_not(client, callers):
    unexpected, missing = [], []
    for method, path, body, allowed in MATRIX:
        for caller in CALLERS:
            status = request_as(client, callers, caller, method, path, body).status_code
            ok = 200 <= status < 300
            if ok and caller not in allowed:
                unexpected.append((caller, method, path, status))
            if not ok and caller in allowed:
                missing.append((caller, method, path, status))

    assert unexpected == [], unexpected
    assert missing == [], missing


def test_anonymous_people_are_sent_to_sign_in_and_others_refused(client, callers):
    assert request_as(client, callers, "anonymous", "GET", "/traces/", None)["Location"].startswith("/login/")
    assert request_as(client, callers, "product", "GET", "/traces/", None).status_code == 403
    assert request_as(client, callers, "support", "GET", "/keys/", None).status_code == 403
