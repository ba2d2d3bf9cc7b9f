"""What the matrix does not see: other people's objects, CSRF on every form that changes something, where
sign-in and the paste box may send a browser, the audit entries of audited reads, and input reflected back."""

import json
import re
from urllib.parse import quote

import pytest
from django.test import Client

from apps.accounts.models import AuditEntry, PersonalToken
from apps.annotations.models import Annotation
from apps.dashboards.models import Chart, Dashboard
from apps.ingest.models import ApiKey
from tests.security.authz_world import PASSWORD, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_person, make_key, aggregate_events, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return build_world(make_person=make_person, make_key=make_key, store_events=aggregate_events)


def browser(world, who: str, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(world.people[who])
    return client


# --- Other people's objects -----------------------------------------------------------------------------


def test_a_product_person_reads_anothers_dashboard_but_cannot_change_it(world):
    product = browser(world, "product")
    theirs = f"/dashboards/d/{world.others_slug}"
    assert product.get(f"{theirs}/").status_code == 200  # shared by design
    assert (
        product.post(f"{theirs}/charts/{world.others_chart_id}/move/", {"direction": "up"}).status_code == 403
    )
    assert product.post(f"{theirs}/charts/{world.others_chart_id}/remove/").status_code == 403
    assert product.post(f"{theirs}/delete/").status_code == 403
    assert Chart.objects.filter(pk=world.others_chart_id).exists()
    assert Dashboard.objects.filter(slug=world.others_slug).exists()


def test_anothers_chart_cannot_be_reached_through_ones_own_dashboard(world):
    product = browser(world, "product")
    mine = f"/dashboards/d/{world.dashboard_slug}"
    assert product.post(f"{mine}/charts/{world.others_chart_id}/remove/").status_code == 404
    assert (
        product.post(f"{mine}/charts/{world.others_chart_id}/move/", {"direction": "up"}).status_code == 404
    )
    assert Chart.objects.filter(pk=world.others_chart_id).exists()


def test_a_chart_cannot_be_saved_into_anothers_dashboard(world):
    theirs = Dashboard.objects.get(slug=world.others_slug)
    response = browser(world, "product").post(
        "/dashboards/charts/",
        {"title": "mine now", "query_string": "event=search", "dashboard": str(theirs.pk)},
    )
    assert response.status_code == 302 and response["Location"].startswith("/dashboards/?")
    assert not theirs.charts.filter(title="mine now").exists()


def test_an_admin_may_change_anyones_dashboard(world):
    admin = browser(world, "admin")
    theirs = f"/dashboards/d/{world.others_slug}"
    assert admin.post(f"{theirs}/charts/{world.others_chart_id}/remove/").status_code == 302
    assert admin.post(f"{theirs}/delete/").status_code == 302
    assert not Dashboard.objects.filter(slug=world.others_slug).exists()


def test_a_person_sees_and_revokes_only_their_own_tokens(world, api_client):
    support_token = PersonalToken.objects.filter(user=world.people["support"], revoked_at=None).first()
    product = browser(world, "product")
    page = product.get("/account/tokens/").content.decode()
    assert support_token.prefix not in page
    assert product.post(f"/account/tokens/{support_token.prefix}/revoke/").status_code == 302
    support_token.refresh_from_db()
    assert support_token.revoked_at is None
    answer = api_client.get("/api/v1/coverage", HTTP_AUTHORIZATION=f"Bearer {world.secrets['support_token']}")
    assert answer.status_code == 200


def test_an_annotations_service_is_its_keys_whatever_the_body_says(world, api_client):
    response = api_client.post(
        "/api/v1/annotations",
        {"text": "deploy", "service": "billing", "stage": "dev"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {world.secrets['service_key']}",
    )
    assert response.status_code == 201
    stored = Annotation.objects.get(pk=response.json()["id"])
    assert (stored.service, stored.stage) == ("gateway", "prod")


# --- CSRF: every form that changes something refuses a post without the page's token ---------------------

CHANGES = [
    ("product", "/dashboards/charts/", {"title": "t", "query_string": "event=search", "dashboard": "new"}),
    ("product", "/dashboards/d/", {"name": "n"}),
    ("product", "/dashboards/d/{slug}/delete/", {}),
    ("product", "/dashboards/d/{slug}/charts/{chart}/move/", {"direction": "down"}),
    ("product", "/dashboards/d/{slug}/charts/{chart}/remove/", {}),
    ("admin", "/keys/", {"service": "forged", "stage": "prod"}),
    ("admin", "/keys/{prefix}/rotate/", {"grace": "0"}),
    ("admin", "/keys/{prefix}/revoke/", {}),
    ("support", "/account/tokens/", {"label": "forged"}),
    ("support", "/account/tokens/{token_prefix}/revoke/", {}),
    ("support", "/logout/", {}),
    ("admin", "/admin/accounts/auditentry/", {"action": "delete_selected", "_selected_action": "1"}),
    ("admin", "/admin/auth/user/{admin_id}/delete/", {"post": "yes"}),
]


@pytest.mark.parametrize("who,path,data", CHANGES, ids=[path for _, path, _ in CHANGES])
def test_a_cross_site_post_is_refused(world, who, path, data):
    token = PersonalToken.objects.filter(user=world.people["support"], revoked_at=None).first()
    path = world.fill(path.replace("{token_prefix}", token.prefix))
    before = _state()
    response = browser(world, who, enforce_csrf_checks=True).post(path, data)
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    assert _state() == before


def _state() -> tuple:
    return (
        Dashboard.objects.count(),
        Chart.objects.count(),
        list(ApiKey.objects.order_by("pk").values_list("prefix", "revoked_at", "expires_at")),
        list(PersonalToken.objects.order_by("pk").values_list("prefix", "revoked_at")),
        AuditEntry.objects.count(),
    )


def test_the_page_forms_carry_the_csrf_token(world):
    pages = {
        "product": ["/dashboards/d/", f"/dashboards/d/{world.dashboard_slug}/", "/dashboards/?event=search"],
        "admin": ["/keys/"],
        "support": ["/account/tokens/"],
    }
    for who, paths in pages.items():
        client = browser(world, who)
        for path in paths:
            html = client.get(path).content.decode()
            forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", html, re.S)
            assert forms, path
            assert all("csrfmiddlewaretoken" in form for form in forms), path


# --- Where a browser may be sent -----------------------------------------------------------------------

HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    " //evil.example",
    "/%2F/evil.example",
    "http://testserver@evil.example/",
]


def _stays_here(location: str) -> bool:
    return location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_sign_in_never_sends_the_browser_to_another_site(world, target):
    client = Client()
    response = client.post(
        "/login/?next=" + quote(target, safe=""),
        {"username": "support-person", "password": PASSWORD, "next": target},
    )
    assert response.status_code == 302
    assert _stays_here(response["Location"]), response["Location"]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_sign_out_never_sends_the_browser_to_another_site(world, target):
    response = browser(world, "support").post("/logout/", {"next": target})
    assert response.status_code == 302
    assert _stays_here(response["Location"]), response["Location"]


@pytest.mark.parametrize(
    "pasted", ["//evil.example", "/\\evil.example", "https://evil.example/x", "../../admin/"]
)
def test_the_paste_box_opens_only_portal_pages(world, store_events, pasted):
    store_events([{"service": "gateway", "event": "x", "correlation_id": pasted, "user_id": pasted + "u"}])
    support = browser(world, "support")
    for value in (pasted, pasted + "u"):
        response = support.get("/traces/", {"q": value})
        assert response.status_code == 302
        location = response["Location"]
        assert _stays_here(location) and location.startswith(("/traces/", "/users/")), location


def test_a_refused_chart_goes_back_to_the_explorer_whatever_its_query_string(world):
    response = browser(world, "product").post(
        "/dashboards/charts/", {"title": "", "query_string": "//evil.example/", "dashboard": "new"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/dashboards/?")


# --- Audited reads -------------------------------------------------------------------------------------

AUDITED = [
    ("/traces/req-alice/", AuditEntry.TRAIL_VIEWED, "req-alice", "page"),
    ("/users/alice/", AuditEntry.USER_VIEWED, "alice", "page"),
    ("/traces/?user_id=alice", AuditEntry.USER_VIEWED, "alice", "search"),
    ("/traces/?text=boom", AuditEntry.REQUESTS_SEARCHED, "text=boom", "search"),
    (
        "/traces/req-alice/surrounding/?service=gateway&at={at}",
        AuditEntry.TRAIL_VIEWED,
        "surrounding gateway",
        "page",
    ),
    ("/api/v1/traces/req-alice", AuditEntry.TRAIL_VIEWED, "req-alice", "api"),
    ("/api/v1/users/alice/requests", AuditEntry.USER_VIEWED, "alice", "api"),
    ("/dashboards/users/?event=search", AuditEntry.REQUESTS_SEARCHED, "users behind a chart point", "page"),
    ("/admin/ingest/rawevent/{raw}/change/", AuditEntry.RAW_EVENT_VIEWED, "gateway:", "admin"),
    ("/admin/ingest/rawevent/?q=alice", AuditEntry.REQUESTS_SEARCHED, "raw events matching alice", "admin"),
]


@pytest.mark.parametrize("path,action,target,via", AUDITED, ids=[path for path, *_ in AUDITED])
def test_an_audited_read_is_audited_once_as_the_reader(world, path, action, target, via):
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    response = browser(world, "admin").get(world.fill(path))
    assert response.status_code == 200
    entries = AuditEntry.objects.exclude(pk__in=before)
    assert [(e.action, e.actor_name, e.via) for e in entries] == [(action, "admin-person", via)]
    assert target in entries[0].target


def test_a_read_through_a_token_is_audited_as_its_owner(world, api_client):
    api_client.get("/api/v1/traces/req-bob", HTTP_AUTHORIZATION=f"Bearer {world.secrets['support_token']}")
    entry = AuditEntry.objects.get(action=AuditEntry.TRAIL_VIEWED, target="req-bob")
    assert (entry.actor_name, entry.actor_id, entry.via) == (
        "support-person",
        world.people["support"].pk,
        "api",
    )


@pytest.mark.parametrize("method", ["OPTIONS", "POST", "PUT", "DELETE"])
def test_another_method_on_a_trail_page_reads_nothing_and_audits_nothing(world, method):
    # They used to answer as GET: the trail, and an entry for a read nobody made through the page.
    response = browser(world, "support").generic(method, "/traces/req-alice/")
    assert response.status_code == 405
    assert not AuditEntry.objects.filter(action=AuditEntry.TRAIL_VIEWED).exists()


def test_raw_events_filtered_by_user_in_the_admin_are_audited(world):
    response = browser(world, "admin").get("/admin/ingest/rawevent/?user_id=alice")
    assert response.status_code == 200 and "req-alice" in response.content.decode()
    assert AuditEntry.objects.filter(via="admin", target__contains="alice").exists()


# --- Input reflected back ------------------------------------------------------------------------------

PAYLOAD = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
Q = quote(PAYLOAD, safe="")


REFLECTING = [
    ("support", f"/traces/?q={Q}"),
    ("support", f"/traces/?text={Q}&service={Q}&user_id={Q}"),
    ("support", f"/traces/{Q}/"),
    ("support", f"/traces/{Q}/surrounding/?service={Q}&at=2026-01-01T00:00:00%2B00:00&seconds={Q}"),
    ("support", f"/users/{Q}/"),
    ("product", f"/dashboards/?event={Q}&breakdown={Q}"),
    ("product", f"/dashboards/?analysis=funnel&steps={Q}"),
    ("product", f"/dashboards/users/?event={Q}&breakdown={Q}&value={Q}"),
    ("product", f"/dashboards/d/?name={Q}"),
    ("support", f"/login/?next={Q}"),
    ("admin", f"/keys/?x={Q}"),
]


@pytest.mark.parametrize("who,path", REFLECTING, ids=[path[:40] for _, path in REFLECTING])
def test_a_page_never_reflects_input_as_markup(world, who, path):
    response = browser(world, who).get(path)
    assert response.status_code < 500
    assert PAYLOAD not in response.content.decode()
    assert "<script>alert" not in response.content.decode()


@pytest.mark.parametrize(
    "who,path,data",
    [
        ("product", "/dashboards/d/", {"name": PAYLOAD}),
        ("admin", "/keys/", {"service": PAYLOAD, "stage": PAYLOAD, "label": PAYLOAD}),
        ("support", "/account/tokens/", {"label": PAYLOAD}),
        (
            "product",
            "/dashboards/charts/",
            {"title": PAYLOAD, "query_string": "event=search", "dashboard": "new"},
        ),
    ],
)
def test_a_posted_value_is_never_reflected_as_markup(world, who, path, data):
    response = browser(world, who).post(path, data, follow=True)
    assert response.status_code < 500
    assert PAYLOAD not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/traces/{Q}",
        f"/api/v1/users/{Q}/requests?from={Q}",
        f"/api/v1/metrics/series?event=x&measure={Q}",
    ],
)
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_an_api_answer_never_reflects_input_as_markup(world, api_client, path, accept):
    response = api_client.get(
        path, HTTP_AUTHORIZATION=f"Bearer {world.secrets['admin_token']}", HTTP_ACCEPT=accept
    )
    assert 400 <= response.status_code < 500
    body = response.content.decode()
    if response["Content-Type"].startswith("application/json"):
        json.loads(body)
    else:
        assert PAYLOAD not in body
    assert response["X-Content-Type-Options"] == "nosniff"


def test_readiness_details_are_for_admins_only(world):
    assert all("detail" not in check for check in Client().get("/readyz").json()["checks"].values())
    for who in ("product", "support", "norole"):
        checks = browser(world, who).get("/readyz").json()["checks"]
        assert all("detail" not in check for check in checks.values())
    assert any(
        "detail" in check for check in browser(world, "admin").get("/readyz").json()["checks"].values()
    )


def test_a_key_cannot_send_for_another_service(world, api_client):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.secrets['other_key']}"}  # billing's, not a forwarder
    one = api_client.post("/api/v1/events", {"service": "gateway", "event": "x"}, format="json", **auth)
    assert one.status_code == 403
    batch = api_client.post(
        "/api/v1/batch",
        {"batch": [{"service": "gateway", "event": "x"}, {"event": "y"}]},
        format="json",
        **auth,
    )
    assert batch.status_code == 202
    assert (batch.json()["accepted"], [r["index"] for r in batch.json()["rejected"]]) == (1, [0])
