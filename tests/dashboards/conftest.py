"""Dashboards fixtures: a signed-in product person."""

import pytest


@pytest.fixture
def product_client(client, make_person):
    client.force_login(make_person("product"))
    return client
