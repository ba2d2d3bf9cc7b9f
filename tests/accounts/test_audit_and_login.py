"""Every read of a user's trail or page is audited; repeated failed sign-ins lock the account for a while."""

import pytest

from apps.accounts.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_opening_trails_and_user_pages_is_audited(client, make_person, store_events):
    sam = make_person("support", "sam")
    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])
    client.force_login(sam)

    client.get("/traces/req-1/")
    client.get("/users/u-1/")
    client.get("/api/v1/traces/req-1")
    client.get("/api/v1/users/u-1/requests")
    client.get("/traces/", {"user_id": "u-1", "range": "all"})
    client.get("/traces/", {"text": "timeout", "range": "all"})

    entries = list(
        AuditEntry.objects.order_by("at", "pk").values_list("actor_name", "action", "target", "via")
    )
    assert entries == [
        ("sam", "trail_viewed", "req-1", "page"),
        ("sam", "user_viewed", "u-1", "page"),
        ("sam", "trail_viewed", "req-1", "api"),
        ("sam", "user_viewed", "u-1", "api"),
        ("sam", "user_viewed", "u-1", "search"),
        ("sam", "requests_searched", "text=timeout&range=all", "search"),
    ]


def test_refused_reads_are_not_audited_as_reads(client, make_person):
    client.force_login(make_person("product"))

    client.get("/traces/req-1/")

    assert not AuditEntry.objects.exists()


def test_the_audit_log_is_readable_by_admins_only(client, make_person):
    client.force_login(make_person("admin"))
    assert client.get("/admin/accounts/auditentry/").status_code == 200
    client.force_login(make_person("support", "sam"))
    assert client.get("/admin/accounts/auditentry/").status_code == 302


def test_sign_in_is_throttled_after_repeated_failures(client, make_person, settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_person("support", "sam")

    for _ in range(3):
        assert (
            b"enter a correct username and password"
            in client.post("/login/", {"username": "sam", "password": "wrong"}).content
        )
    locked = client.post("/login/", {"username": "sam", "password": "correct-horse-battery"})

    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("guessed_on", "signed_in_on"),
    [("/login/", "/admin/login/"), ("/admin/login/", "/login/")],
    ids=["portal-failures-lock-the-admin-page", "admin-page-failures-count"],
)
def test_the_admin_sign_in_page_shares_the_lockout(client, make_person, settings, guessed_on, signed_in_on):
    settings.LOGIN_MAX_FAILURES = 3
    name = f"root-{guessed_on.strip('/').replace('/', '-')}"  # a name of its own: lockouts outlive a test
    make_person("admin", name)
    for _ in range(3):
        client.post(guessed_on, {"username": name, "password": "wrong"})

    locked = client.post(signed_in_on, {"username": name, "password": "correct-horse-battery"})

    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session


def test_the_right_password_refused_by_the_admin_page_is_not_a_failure(client, make_person, settings):
    settings.LOGIN_MAX_FAILURES = 2
    make_person("support", "sam-no-admin")
    for _ in range(2):  # support is not staff: refused there, but the password was right
        client.post("/admin/login/", {"username": "sam-no-admin", "password": "correct-horse-battery"})

    client.post("/login/", {"username": "sam-no-admin", "password": "correct-horse-battery"})

    assert "_auth_user_id" in client.session


def test_a_blank_password_does_not_reset_the_failure_count(client, make_person, settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_person("support", "sam-blank")
    for password in ("wrong", "wrong", "", "wrong"):
        client.post("/login/", {"username": "sam-blank", "password": password})

    locked = client.post("/login/", {"username": "sam-blank", "password": "correct-horse-battery"})

    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "recorded"),
    [
        (True, "203.0.113.7", "203.0.113.7"),  # nginx's X-Forwarded-For: the client's address alone
        (True, "not an address", "127.0.0.1"),  # nothing usable forwarded: the peer's
        (False, "203.0.113.7", "127.0.0.1"),  # not behind the proxy: a client could forge the header
    ],
    ids=["behind-proxy", "garbage", "direct"],
)
def test_the_audit_log_records_the_clients_address(
    client, make_person, store_events, settings, behind_proxy, forwarded, recorded
):
    settings.BEHIND_PROXY = behind_proxy
    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])
    client.force_login(make_person("support", "sam"))

    client.get("/traces/req-1/", HTTP_X_FORWARDED_FOR=forwarded)
    client.get("/api/v1/traces/req-1", HTTP_X_FORWARDED_FOR=forwarded)

    assert list(AuditEntry.objects.values_list("ip", flat=True)) == [recorded, recorded]
