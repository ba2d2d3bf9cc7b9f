"""Someone else sets a person's password (an admin in /admin/, an operator's command): the person is presumed
compromised, so every session and personal token of theirs ends, and the reset is audited."""

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts.models import AuditEntry, PersonalToken

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "lantern-orchard-vessel"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def sign_in(username: str, password: str = PASSWORD) -> Client:
    browser = Client()
    browser.post("/login/", {"username": username, "password": password})
    return browser


def signed_in(browser: Client) -> bool:
    return browser.get("/account/tokens/").status_code == 200


def new_token(browser: Client) -> str:
    answer = browser.post("/account/tokens/", {"label": "notebook"})
    return re.search(r'id="new-key">([^<]+)<', answer.content.decode()).group(1)


def reads_with_token(api_client, raw: str) -> bool:
    # A trail nobody has: 404 for a token that authenticates, 401 for one refused.
    return api_client.get("/api/v1/traces/no-such", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404


def admin_sets_password(admin: Client, person, password: str = NEW_PASSWORD, **extra: str):
    return admin.post(
        f"/admin/auth/user/{person.pk}/password/",
        {"password1": password, "password2": password, "usable_password": "true", **extra},
    )


@pytest.fixture
def admin_browser(make_person):
    name = unique("ada")
    make_person("admin", name)
    return sign_in(name)


def test_an_admins_reset_ends_the_persons_sessions_and_tokens(admin_browser, make_person, api_client):
    name = unique("sam")
    person = make_person("support", name)
    laptop, phone = sign_in(name), sign_in(name)
    raw = new_token(laptop)

    answer = admin_sets_password(admin_browser, person)

    assert answer.status_code == 302 and answer["Location"] == f"/admin/auth/user/{person.pk}/change/"
    assert not signed_in(laptop) and not signed_in(phone)
    assert not reads_with_token(api_client, raw)
    assert PersonalToken.objects.get(user=person).revoked_at is not None
    assert signed_in(sign_in(name, NEW_PASSWORD))
    assert signed_in(admin_browser)


def test_an_admins_reset_is_audited_without_the_password(admin_browser, make_person):
    name = unique("sam")
    person = make_person("support", name)
    admin = admin_browser.get("/").wsgi_request.user

    admin_sets_password(admin_browser, person)

    entry = AuditEntry.objects.get(action="password_reset")
    assert (entry.actor, entry.actor_name, entry.target, entry.via) == (admin, str(admin), name, "admin")
    assert NEW_PASSWORD not in str(list(AuditEntry.objects.values()))


def test_disabling_password_sign_in_ends_them_too(admin_browser, make_person, api_client):
    name = unique("sam")
    person = make_person("support", name)
    laptop = sign_in(name)
    raw = new_token(laptop)

    admin_browser.post(
        f"/admin/auth/user/{person.pk}/password/", {"usable_password": "false", "unset-password": "1"}
    )

    assert not get_user_model().objects.get(pk=person.pk).has_usable_password()
    assert not signed_in(laptop)
    assert not reads_with_token(api_client, raw)
    assert AuditEntry.objects.filter(action="password_reset", target=name).exists()


def test_a_refused_reset_ends_nothing(admin_browser, make_person, api_client):
    name = unique("sam")
    person = make_person("support", name)
    laptop = sign_in(name)
    raw = new_token(laptop)

    answer = admin_sets_password(admin_browser, person, password="short")

    assert answer.status_code == 200
    assert signed_in(laptop) and reads_with_token(api_client, raw)
    assert not AuditEntry.objects.filter(action="password_reset").exists()


def test_other_peoples_sessions_and_tokens_are_left_alone(admin_browser, make_person, api_client):
    name, other = unique("sam"), unique("kim")
    person = make_person("support", name)
    make_person("support", other)
    colleague = sign_in(other)
    raw = new_token(colleague)

    admin_sets_password(admin_browser, person)

    assert signed_in(colleague) and reads_with_token(api_client, raw)


def test_an_admin_resetting_their_own_password_keeps_the_session_in_use(make_person, api_client):
    name = unique("ada")
    admin = make_person("admin", name)
    here, elsewhere = sign_in(name), sign_in(name)
    raw = new_token(elsewhere)

    admin_sets_password(here, admin)

    assert signed_in(here)
    assert not signed_in(elsewhere)
    assert not reads_with_token(api_client, raw)


def test_create_user_replace_ends_the_persons_sessions_and_tokens(make_person, run, api_client):
    name = unique("sam")
    make_person("support", name)
    laptop = sign_in(name)
    raw = new_token(laptop)

    done = run("create_user", name, "--role", "support", "--password", NEW_PASSWORD, "--replace")

    assert done.status == 0, done.message
    assert not signed_in(laptop)
    assert not reads_with_token(api_client, raw)
    entry = AuditEntry.objects.get(action="password_reset")
    assert (entry.target, entry.via) == (name, "command")
    assert entry.actor_name.startswith("command:")
    assert NEW_PASSWORD not in str(list(AuditEntry.objects.values()))


def test_create_user_of_a_new_person_audits_no_reset(run):
    done = run("create_user", unique("new"), "--role", "support", "--password", NEW_PASSWORD)

    assert done.status == 0, done.message
    assert not AuditEntry.objects.filter(action="password_reset").exists()


def test_djangos_changepassword_ends_the_persons_sessions_and_tokens(
    make_person, run, api_client, monkeypatch
):
    name = unique("sam")
    make_person("support", name)
    laptop = sign_in(name)
    raw = new_token(laptop)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)

    done = run("changepassword", name)

    assert done.status == 0, done.message
    assert not signed_in(laptop)
    assert not reads_with_token(api_client, raw)
    assert signed_in(sign_in(name, NEW_PASSWORD))
    entry = AuditEntry.objects.get(action="password_reset")
    assert (entry.target, entry.via) == (name, "command")
