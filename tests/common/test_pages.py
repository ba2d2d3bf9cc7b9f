"""The login page is served and the landing page needs a login."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_login_page_is_served(client):
    response = client.get("/login/")

    assert response.status_code == 200
    assert b"Sign in" in response.content


@pytest.mark.django_db
def test_home_redirects_anonymous_users_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_a_user_signs_in_and_sees_the_portal(client):
    call_command("create_user", "ada", "--role", "support", "--password", "correct-horse-battery")

    response = client.post("/login/", {"username": "ada", "password": "correct-horse-battery"}, follow=True)

    assert response.status_code == 200
    assert b"ada" in response.content
    assert b"Sign out" in response.content
