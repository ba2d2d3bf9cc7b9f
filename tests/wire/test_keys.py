"""Looking a key up by its secret, with the revoked and expired rules of ApiKeyAuthentication."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.keys import UnknownKey, UnusableKey, api_key_for_secret
from apps.ingest.models import ApiKey
from apps.ingest.services import service_key_revoke
from apps.wire.keys import ConflictingKeys, one_key


def test_a_usable_key_is_found_with_its_service_in_one_query(make_key, django_assert_num_queries):
    api_key, raw = make_key(service="search-api")

    with django_assert_num_queries(1):
        found = api_key_for_secret(raw=raw, now=timezone.now())
        assert found.service.name == "search-api"

    assert found.pk == api_key.pk


def test_an_unknown_secret_is_unknown(make_key):
    make_key()

    with pytest.raises(UnknownKey):
        api_key_for_secret(raw="swk_deadbeef_nope", now=timezone.now())


def test_revoked_and_expired_keys_are_unusable_and_say_why(make_key):
    revoked, revoked_raw = make_key()
    expired, expired_raw = make_key(service="other")
    service_key_revoke(api_key=revoked, actor=Actor.command("tests"))
    now = timezone.now()
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=now)

    with pytest.raises(UnusableKey) as was_revoked:
        api_key_for_secret(raw=revoked_raw, now=now)
    with pytest.raises(UnusableKey) as was_expired:
        api_key_for_secret(raw=expired_raw, now=now)

    assert "revoked" in was_revoked.value.reason
    assert "expired" in was_expired.value.reason
    assert api_key_for_secret(raw=expired_raw, now=now - timedelta(seconds=1)).pk == expired.pk


def test_one_key_skips_blanks_and_refuses_two():
    assert one_key([None, "", "k", "k"]) == "k"
    assert one_key([None]) is None
    assert one_key([42]) == "42"
    with pytest.raises(ConflictingKeys):
        one_key(["k", "other"])
