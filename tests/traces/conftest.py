import pytest


@pytest.fixture
def support_client(client, make_person):
    """The test client signed in as a person with the support role."""
    client.force_login(make_person("support"))
    return client
