"""A new service key or personal token whose random public prefix is already taken (one in 2^32 per existing
secret, so likely enough with thousands of them) is made with another prefix, not refused with a 500."""

import itertools

import pytest

from apps.accounts.actors import Actor
from apps.accounts.models import PersonalToken
from apps.accounts.services import personal_token_create
from apps.common import secrets as portal_secrets
from apps.ingest.models import ApiKey
from apps.ingest.services import service_key_create

pytestmark = pytest.mark.django_db


def prefixes_drawn(monkeypatch, *drawn: str) -> None:
    """Make the random prefixes come out as `drawn` (the randomness is what cannot be caused for real)."""
    sequence = itertools.chain(drawn, itertools.cycle(["f00dfeed"]))
    monkeypatch.setattr(portal_secrets.secrets, "token_hex", lambda n: next(sequence))


def test_a_personal_token_whose_prefix_is_taken_gets_another(monkeypatch, make_person):
    person = make_person("support")
    prefixes_drawn(monkeypatch, "0badc0de", "0badc0de", "1234abcd")
    first, _ = personal_token_create(user=person, label="first")

    second, raw = personal_token_create(user=person, label="second")

    assert (first.prefix, second.prefix) == ("0badc0de", "1234abcd")
    assert raw.startswith("swp_1234abcd_")
    assert PersonalToken.objects.count() == 2


def test_a_service_key_whose_prefix_is_taken_gets_another(monkeypatch):
    prefixes_drawn(monkeypatch, "0badc0de", "0badc0de", "1234abcd")
    first, _ = service_key_create(service_name="search-api", stage="prod", actor=Actor.command())

    second, raw = service_key_create(service_name="search-api", stage="prod", actor=Actor.command())

    assert (first.prefix, second.prefix) == ("0badc0de", "1234abcd")
    assert raw.startswith("swk_1234abcd_")
    assert ApiKey.objects.count() == 2
