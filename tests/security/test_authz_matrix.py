"""Who may do what, everywhere: every route of the URL map × every kind of caller × every method.

Callers: anonymous; a person of each role (and one with none) signed in; a personal token of each; a revoked
token; a service key, a revoked one, one rotated out (grace over), another service's. Each answer must be
the one an internal tool owes that caller: the page or data when allowed, else a sign-in redirect, 401,
403, 404 or 405, never another person's data, never a 5xx. Requests that change something run in a
savepoint that is rolled back, so every caller meets the same portal.

`test_every_route_is_in_the_matrix` keeps the matrix whole: a new URL pattern fails it until added here.
"""

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import get_resolver

from tests.security.authz_world import CALLERS, PEOPLE, TOKENS, build_world

pytestmark = pytest.mark.django_db

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE")
READ = ("GET", "HEAD")
ROLES = {
    "product": {"product"},
    "support": {"support"},
    "admin": {"product", "support", "admin"},
    "norole": set(),
}
# Outcomes are status codes as text; redirects say where they go.
LOGIN = "302>login"
ADMIN_LOGIN = "302>admin-login"
ELSEWHERE = "302"
ANY_CHANGE = {"200", "201", "202", ELSEWHERE}


def outcome(response) -> str:
    if response.status_code in (301, 302, 303):
        where = response["Location"]
        if where.startswith("/login/"):
            return LOGIN
        if where.startswith("/admin/login/?next="):
            return ADMIN_LOGIN
        return ELSEWHERE
    return str(response.status_code)


def person_of(caller: str) -> str | None:
    """The role name of a person or token caller (None: no person behind it)."""
    if caller in PEOPLE:
        return caller
    if caller in TOKENS and caller != "revoked_token":
        return caller.removesuffix("_token")
    return None


def holds(caller: str, roles: tuple[str, ...]) -> bool:
    person = person_of(caller)
    return person is not None and (not roles or bool(ROLES[person] & set(roles)))


@dataclass(frozen=True)
class Route:
    path: str  # with {placeholders} from world.fill
    kind: str
    roles: tuple[str, ...] = ()  # who may (admins always may); () = any signed-in person
    methods: tuple[str, ...] = READ  # what the route answers to
    ok: dict = field(default_factory=dict)  # method -> outcomes when allowed (default: {"200"})
    body: dict | list | None = None
    pattern: str = ""  # the URL pattern it covers, when the path alone does not say


# Pages: sessions only (a token or key on a page is nobody). Read APIs: sessions and personal tokens.
PAGES = [
    Route("/", "page"),
    Route("/dashboards/", "page", ("product",)),
    Route("/dashboards/?event=search&format=csv", "page", ("product",)),
    Route("/dashboards/users/?event=search", "page", ("product", "support")),
    Route("/dashboards/names/events/?q=search", "page", ("product",)),
    Route(
        "/dashboards/charts/",
        "page",
        ("product",),
        ("POST",),
        {"POST": {ELSEWHERE}},
        {"title": "t", "query_string": "event=search", "dashboard": "new", "new_name": "n"},
    ),
    Route("/dashboards/d/", "page", ("product",), (*READ, "POST"), {"POST": {ELSEWHERE}}, {"name": "n"}),
    Route("/dashboards/d/{slug}/", "page", ("product",)),
    Route("/dashboards/d/{others_slug}/", "page", ("product",)),  # shared: every product reader
    # A dashboard's chart, read by its page's script: exactly the dashboard page's readers.
    Route("/dashboards/d/{slug}/charts/{chart}/", "page", ("product",)),
    Route("/dashboards/d/{others_slug}/charts/{others_chart}/?part=figure", "page", ("product",)),
    Route("/dashboards/d/{slug}/charts/{others_chart}/", "page", ("product",), ok={m: {"404"} for m in READ}),
    Route("/dashboards/d/{slug}/delete/", "page", ("product",), ("POST",), {"POST": {ELSEWHERE}}),
    Route(
        "/dashboards/d/{slug}/charts/{chart}/move/",
        "page",
        ("product",),
        ("POST",),
        {"POST": {ELSEWHERE}},
        {"direction": "down"},
    ),
    Route(
        "/dashboards/d/{slug}/charts/{chart}/remove/", "page", ("product",), ("POST",), {"POST": {ELSEWHERE}}
    ),
    Route("/traces/", "page", ("support",)),
    Route("/traces/?q=req-alice", "page", ("support",), ok={m: {ELSEWHERE} for m in READ}),
    Route("/traces/req-alice/", "page", ("support",)),
    Route("/traces/no-such-request/", "page", ("support",), ok={m: {"404"} for m in READ}),
    Route("/traces/req-alice/surrounding/?service=gateway&at={at}", "page", ("support",)),
    Route("/users/alice/", "page", ("support",)),
    Route(
        "/keys/",
        "page",
        ("admin",),
        (*READ, "POST"),
        {"POST": {"200"}},
        {"service": "new-svc", "stage": "prod"},
    ),
    Route("/keys/{prefix}/rotate/", "page", ("admin",), ("POST",), {"POST": {"200"}}, {"grace": "1h"}),
    Route("/keys/{prefix}/revoke/", "page", ("admin",), ("POST",), {"POST": {ELSEWHERE}}),
    Route("/account/tokens/", "page", (), (*READ, "POST"), {"POST": {"200"}}, {"label": "mine"}),
    Route("/account/tokens/nosuch/revoke/", "page", (), ("POST",), {"POST": {ELSEWHERE}}),
    # No body: the form is refused before any password is checked (nothing counted towards a lockout).
    Route("/account/password/", "page", (), (*READ, "POST"), {"POST": {"200"}}),
]
APIS = [
    Route("/api/v1/traces/req-alice", "api", ("support",)),
    Route("/api/v1/traces/no-such-request", "api", ("support",), ok={m: {"404"} for m in READ}),
    Route("/api/v1/users/alice/requests", "api", ("support",)),
    Route("/api/v1/metrics/series?event=search", "api", ("product",)),
    Route("/api/v1/metrics/funnel?steps=search,search", "api", ("product",)),
    Route("/api/v1/metrics/retention?start_event=search&return_event=search", "api", ("product",)),
    Route("/api/v1/metrics/users?event=search", "api", ("product",)),
    Route("/api/v1/coverage", "api", ("support",)),
    Route("/api/v1/annotations", "annotations", ("product", "support"), body={"text": "deploy v2"}),
    Route("/api/schema/", "schema"),
    Route("/api/docs/", "docs"),
]
_OTLP_LOGS = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "hello"}}]}]}]}
_OTLP_SPANS = {
    "resourceSpans": [
        {
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "GET /",
                            "startTimeUnixNano": "1764000000000000000",
                            "endTimeUnixNano": "1764000001000000000",
                        }
                    ]
                }
            ]
        }
    ]
}
_SEGMENT = {
    "batch": {"batch": [{"type": "track", "event": "search", "userId": "u1"}]},
    "track": {"event": "search", "userId": "u1"},
    "identify": {"userId": "u1"},
    "page": {"userId": "u1", "name": "home"},
    "screen": {"userId": "u1", "name": "home"},
    "group": {"userId": "u1", "groupId": "g1"},
    "alias": {"userId": "u1", "previousId": "u0"},
}
WIRE = [
    Route("/api/v1/events", "ingest", methods=("POST",), body={"event": "search"}),
    Route("/api/v1/batch", "ingest", methods=("POST",), body={"batch": [{"event": "search"}]}),
    *(
        Route(f"/posthog/{name}", "posthog", methods=("POST",), body={"event": "search", "distinct_id": "u1"})
        for name in ("batch/", "capture/", "e/", "i/v0/e/", "i/v0/ai/batch/", "flags/", "decide/")
    ),
    Route("/posthog/array/swk_0_unknown/config", "missing", pattern="^posthog/array/"),  # an unknown key: 404
    Route("/v1/batch", "segment", methods=("POST",), body=_SEGMENT["batch"]),
    *(
        Route(f"/segment/v1/{kind}", "segment", methods=("POST",), body=body)
        for kind, body in _SEGMENT.items()
    ),
    Route("/otlp/v1/logs", "otlp", methods=("POST",), body=_OTLP_LOGS),
    Route("/otlp/v1/traces", "otlp", methods=("POST",), body=_OTLP_SPANS),
]
OTHERS = [
    Route("/healthz", "probe"),
    Route("/readyz", "probe"),
    Route("/login/", "login"),
    Route("/logout/", "logout", methods=("POST",)),
    Route("/static/dashboards/dashboards.css", "static"),
    Route("/no-such-page/", "missing"),
]


def _admin_routes() -> list[Route]:
    routes = [
        Route("/admin/", "admin"),
        Route("/admin/login/", "admin-login"),
        Route("/admin/logout/", "admin-logout"),
        Route("/admin/password_change/", "admin"),
        Route("/admin/password_change/done/", "admin"),
        Route("/admin/autocomplete/", "admin"),
        Route("/admin/jsi18n/", "admin"),
        Route("/admin/r/{dashboard_ct}/{dashboard_id}/", "admin", pattern="admin/r/"),
        Route("/admin/auth/user/{admin_id}/password/", "admin"),
        Route("/admin/no-such-model/", "admin", pattern="admin/(?P<url>"),
    ]
    for model in admin.site._registry:
        opts = model._meta
        base = f"/admin/{opts.app_label}/{opts.model_name}/"
        routes.append(Route(f"/admin/{opts.app_label}/", "admin", pattern="admin/^(?P<app_label>"))
        routes.append(Route(base, "admin"))
        routes.append(Route(f"{base}add/", "admin"))
        for tail in ("", "change/", "delete/", "history/"):
            routes.append(Route(f"{base}{{obj:{opts.label}}}/{tail}", "admin"))
    return list({route.path: route for route in routes}.values())


ADMIN = _admin_routes()
ROUTES = PAGES + APIS + WIRE + OTHERS + ADMIN

# apps/wire: posthog and segment check the method before they read the key from the body: another method
# than POST (and OPTIONS) is a 405 whoever calls.
BODY_KEY_KINDS = ("posthog", "segment")


def expected(route: Route, caller: str, method: str) -> set[str]:
    """The answers `caller` may get for `method` on `route`."""
    kind, allowed = route.kind, method in route.methods
    ok = route.ok.get(method, {"200"})
    if kind == "static":
        return {"200"} if method in READ else {"405"}
    if kind == "missing":
        return {"404"}
    if kind == "probe":
        return {"200"} if method in READ else {"405"}
    if kind == "login":
        return {"405"} if method == "DELETE" else {"200"}  # Django's LoginView answers PUT as POST
    if kind == "logout":
        return {LOGIN} if method == "POST" else {"200"} if method == "OPTIONS" else {"405"}
    if kind == "page":
        if caller not in PEOPLE:
            return {LOGIN} if allowed else {LOGIN, "405"}
        if not holds(caller, route.roles):
            return {"403"} if allowed else {"403", "405"}
        return ok if allowed else {"405"}
    if kind in ("api", "schema"):
        if person_of(caller) is None:
            return {"401"}
        if not holds(caller, route.roles):
            return {"403"}
        return ok if method in (*READ, "OPTIONS") else {"405"}
    if kind == "docs":
        if caller not in PEOPLE:
            return {LOGIN}
        return {"200"} if method in READ else {"405"}
    if kind == "annotations":
        if method == "POST":  # a service key's door
            return {"201"} if caller in ("service_key", "other_key") else _dead_key(caller, forbidden="403")
        if person_of(caller) is None:
            return {"401"}
        if not holds(caller, route.roles):
            return {"403"}
        return {"200"} if method in (*READ, "OPTIONS") else {"405"}
    if kind in ("ingest", "otlp", "posthog", "segment"):
        success = {"202"} if kind == "ingest" else {"200"}
        if caller in ("service_key", "other_key"):
            if method == "POST":
                return success
            return {"200", "405"} if method == "OPTIONS" else {"405"}
        if kind in BODY_KEY_KINDS and method not in ("POST", "OPTIONS"):
            return {"405"}
        # posthog SDKs know one auth failure, 401 (apps/wire/auth.py); elsewhere a dead key is 403.
        refused = _dead_key(caller, forbidden="401" if kind == "posthog" else "403")
        # An OPTIONS has no body to read the key from: 400 (no data either way).
        return refused | {"400"} if kind in BODY_KEY_KINDS and method == "OPTIONS" else refused
    if kind == "admin-login":  # a signed-in admin is sent on to the index
        if method == "DELETE":
            return {"405"}
        return {"200"} if method == "OPTIONS" or caller != "admin" else {"200", ELSEWHERE}
    if kind == "admin-logout":  # Django's admin sends a non-staff caller to its index, which asks for sign-in
        if caller != "admin":
            return {ELSEWHERE}
        return {LOGIN} if method == "POST" else {"200", "405", LOGIN}  # PUT logs out, as POST
    if kind == "admin":
        if caller != "admin":
            return {ADMIN_LOGIN}
        # Django's admin: pages, its own 403 for what a model forbids (add, delete), 404, redirects.
        return {"200", "302", "403", "404", "405"}
    raise AssertionError(f"no expectation for {kind}")


def _dead_key(caller: str, *, forbidden: str) -> set[str]:
    return {forbidden} if caller in ("revoked_key", "rotated_key") else {"401"}


def signed_in(world) -> dict[str, Client]:
    """A browser per caller (people signed in once), answers of 500 kept as answers."""
    clients = {caller: Client(raise_request_exception=False) for caller in CALLERS}
    for person in PEOPLE:
        clients[person].force_login(world.people[person])
    return clients


def request(world, client: Client, route: Route, caller: str, method: str):
    """Make one request as `caller`, with the credential where the route's format carries it."""
    secret = world.secrets.get(caller)
    headers = {}
    body = route.body if method in ("POST", "PUT", "DELETE") else None
    if route.kind == "posthog":
        body = {**(body or {}), "api_key": secret} if secret else body
    elif route.kind == "segment" and secret:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    elif secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    path = world.fill(route.path)
    if body is None:
        return client.generic(method, path, **headers)
    if route.kind in ("page", "login", "admin"):
        form = urlencode(body)
        return client.generic(method, path, form, content_type="application/x-www-form-urlencoded", **headers)
    return client.generic(method, path, json.dumps(body), content_type="application/json", **headers)


def answers(world, routes: tuple[Route, ...]) -> dict[tuple[str, str, str], str]:
    """Every caller's answer to every method on some routes, each in a savepoint rolled back after."""
    clients = signed_in(world)
    found = {}
    for route in routes:
        for caller in CALLERS:
            for method in METHODS:
                if route.kind in (
                    "logout",
                    "admin-logout",
                ):  # it signs the browser out: a fresh one each time
                    clients = signed_in(world)
                with transaction.atomic():
                    response = request(world, clients[caller], route, caller, method)
                    found[route.path, caller, method] = outcome(response)
                    transaction.set_rollback(True)
    return found


@pytest.fixture
def world(make_person, make_key, store_events, settings):
    settings.INGEST_RATE_LIMIT = "100000/min"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # people made fast
    return build_world(make_person=make_person, make_key=make_key, store_events=store_events)


def _groups() -> list[tuple[Route, ...]]:
    """One test per route; the admin's pages of one model together (Django's own code, one world)."""
    groups: dict[str, list[Route]] = {}
    for route in ROUTES:
        model = (
            route.path.split("/")[2:4] if route.path.startswith("/admin/") and "{obj:" in route.path else None
        )
        key = f"/admin/{'/'.join(model)}/*" if model else route.path
        groups.setdefault(key, []).append(route)
    return [tuple(routes) for routes in groups.values()]


GROUPS = _groups()


@pytest.mark.parametrize(
    "routes", GROUPS, ids=[routes[0].path if len(routes) == 1 else routes[0].path + "*" for routes in GROUPS]
)
def test_each_caller_gets_what_it_may(world, routes):
    by_path = {route.path: route for route in routes}
    wrong = []
    for (path, caller, method), got in answers(world, routes).items():
        route = by_path[path]
        allowed = expected(route, caller, method)
        if got not in allowed:
            wrong.append(f"{method} {path} as {caller}: {got}, expected one of {sorted(allowed)}")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_matrix():
    missing = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
                continue
            text = prefix + str(pattern.pattern)
            if not any(
                text.startswith(route.pattern) if route.pattern else _covers(route.path, text)
                for route in ROUTES
            ):
                missing.append(text)

    walk(get_resolver().url_patterns)
    assert not missing, missing


def _covers(path: str, pattern: str) -> bool:
    """Whether a matrix path (or its declared pattern) is an instance of a URL pattern's text."""
    import re

    literal = pattern.replace("^", "").replace("$", "").replace("/?", "/").replace("(?:/)?", "")
    regex = re.sub(r"<[^>]+>", "[^?]+", re.escape(literal).replace(r"\<", "<").replace(r"\>", ">"))
    return re.fullmatch("/" + regex + r"(\?.*)?", path) is not None
