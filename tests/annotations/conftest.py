"""Annotations fixtures: a deploy step's key, and people in each role."""

import pytest


@pytest.fixture
def deploy_key(make_key):
    """Return (ApiKey, secret) of the service `checkout` on stage `prod`."""
    return make_key(service="checkout", stage="prod")


@pytest.fixture
def client_as(client, make_person):
    """Return a function signing the test client in as a new person in a role (None: anonymous)."""

    def sign_in(role: str | None):
        if role is not None:
            client.force_login(make_person(role))
        return client

    return sign_in
