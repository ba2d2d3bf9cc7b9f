"""Service keys looked up by their secret: a change reaches every process's cached copy."""

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.keys import UnusableKey, api_key_for_secret
from apps.ingest.services import service_key_revoke


@pytest.mark.django_db(transaction=True)
def test_a_key_looked_up_while_its_revocation_commits_is_refused_after_the_commit(make_key):
    api_key, raw = make_key()

    def another_request() -> None:  # reads the key as committed so far: not yet revoked, and caches it
        try:
            api_key_for_secret(raw=raw, now=timezone.now())
        finally:
            connection.close()

    with transaction.atomic():
        service_key_revoke(api_key=api_key, actor=Actor.command())
        request = threading.Thread(target=another_request)
        request.start()
        request.join()

    with pytest.raises(UnusableKey):
        api_key_for_secret(raw=raw, now=timezone.now())
