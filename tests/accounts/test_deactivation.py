"""Deactivating a person ends their sessions and tokens: taking the account back into use later does not bring
back a session or a token made before (a stolen cookie or a leaked token stays dead)."""

import re

import pytest
from django.test import Client

from apps.accounts.models import PersonalToken

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def sign_in(username: str) -> Client:
    browser = Client()
    browser.post("/login/", {"username": username, "password": PASSWORD})
    assert browser.get("/account/tokens/").status_code == 200
    return browser


def new_token(browser: Client) -> str:
    answer = browser.post("/account/tokens/", {"label": "notebook"})
    return re.search(r'id="new-key">([^<]+)<', answer.content.decode()).group(1)


def reads_with_token(api_client, raw: str) -> bool:
    # A trail nobody has: 404 for a token that authenticates, 401 for one refused.
    return (
        api_client.get("/api/v1/traces/no-such-trail", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404
    )


def test_a_session_of_a_deactivated_person_stays_ended_when_they_are_reactivated(make_person):
    person = make_person("support", "sam-leaver")
    laptop, phone = sign_in("sam-leaver"), sign_in("sam-leaver")

    person.is_active = False
    person.save()
    assert laptop.get("/account/tokens/").status_code == 302
    person.is_active = True
    person.save()

    assert laptop.get("/account/tokens/").status_code == 302
    assert phone.get("/account/tokens/").status_code == 302
    assert sign_in("sam-leaver").get("/account/tokens/").status_code == 200  # a new sign-in works


def test_a_token_of_a_deactivated_person_stays_revoked_when_they_are_reactivated(api_client, make_person):
    person = make_person("support", "sam-token-leaver")
    raw = new_token(sign_in("sam-token-leaver"))
    assert reads_with_token(api_client, raw)

    person.is_active = False
    person.save()
    person.is_active = True
    person.save()

    assert not reads_with_token(api_client, raw)
    assert PersonalToken.objects.get().revoked_at is not None  # the token list says so


def test_another_persons_sessions_and_tokens_are_left_alone(api_client, make_person):
    leaver = make_person("support", "sam-leaving")
    make_person("support", "kim-staying")
    staying = sign_in("kim-staying")
    raw = new_token(staying)
    sign_in("sam-leaving")

    leaver.is_active = False
    leaver.save()

    assert staying.get("/account/tokens/").status_code == 200
    assert reads_with_token(api_client, raw)
