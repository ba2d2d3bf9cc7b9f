"""Admins and people acting at once on keys, tokens and accounts: one audit entry per change, a revocation
that holds for every request that starts after it, a clash of names told as such."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.accounts.models import AuditEntry, PersonalToken
from apps.accounts.services import user_create
from apps.ingest.models import ApiKey

from .conftest import run_in_thread, wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_admins_revoking_one_key_at_once_leave_one_entry(make_person, make_key, person_client):
    api_key, _ = make_key()
    clients = [person_client(make_person("admin", name)) for name in ("ada", "bob")]
    with transaction.atomic():
        ApiKey.objects.select_for_update().get(pk=api_key.pk)  # a rotation of the key, say, in progress
        threads = [run_in_thread(lambda c=c: c.post(f"/keys/{api_key.prefix}/revoke/")) for c in clients]
        wait_until_blocked(2)
    for thread, _ in threads:
        thread.join(5)

    assert [outcome.value.status_code for _, outcome in threads] == [302, 302]
    assert AuditEntry.objects.filter(action=AuditEntry.KEY_REVOKED, target=api_key.prefix).count() == 1


def test_a_token_revoked_while_a_request_reads_it_is_refused_to_later_requests(
    client, api_client, make_person
):
    person = make_person("product")
    client.force_login(person)
    raw = re.search(r'id="new-key">([^<]+)<', client.post("/account/tokens/").content.decode()).group(1)
    prefix = PersonalToken.objects.get().prefix
    read = "/api/v1/annotations"

    with transaction.atomic():
        # The request below is held between its read of the token (live) and its read of the owner's roles
        # (the memberships table locked here): a slow moment of a busy process.
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE auth_user_groups IN ACCESS EXCLUSIVE MODE")
        thread, early = run_in_thread(lambda: api_client.get(read, HTTP_AUTHORIZATION=f"Bearer {raw}"))
        wait_until_blocked()
        # Meanwhile the owner revokes the token, committed.
        revoked, _ = run_in_thread(lambda: client.post(f"/account/tokens/{prefix}/revoke/"))
        revoked.join(5)
        assert PersonalToken.objects.get().revoked_at is not None
    thread.join(5)

    assert early.value.status_code == 200  # it started before the revocation
    later = api_client.get(read, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert later.status_code == 401, "a request that started after the revocation was let in"


def test_a_person_deactivated_while_a_request_reads_their_token_is_refused_afterwards(
    client, api_client, make_person
):
    person = make_person("product")
    client.force_login(person)
    raw = re.search(r'id="new-key">([^<]+)<', client.post("/account/tokens/").content.decode()).group(1)
    read = "/api/v1/annotations"

    def deactivate() -> None:
        person.is_active = False
        person.save()  # what the admin's change form does

    with transaction.atomic():
        with connection.cursor() as cursor:  # holds the request between its token read and its roles read
            cursor.execute("LOCK TABLE auth_user_groups IN ACCESS EXCLUSIVE MODE")
        thread, early = run_in_thread(lambda: api_client.get(read, HTTP_AUTHORIZATION=f"Bearer {raw}"))
        wait_until_blocked()
        deactivated, outcome = run_in_thread(deactivate)
        deactivated.join(5)
        assert outcome.error is None
    thread.join(5)

    assert early.value.status_code == 200
    later = api_client.get(read, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert later.status_code == 401, "a deactivated person's token was let in"


def test_two_create_user_commands_for_one_name_at_once(make_person):
    with transaction.atomic():
        user_create(username="carol", role="support", password="correct-horse-battery")
        thread, outcome = run_in_thread(
            lambda: call_command("create_user", "carol", role="product", password="correct-horse-battery")
        )
        wait_until_blocked()
    thread.join(5)

    assert isinstance(outcome.error, CommandError), outcome.error
    assert "already exists" in str(outcome.error)
    assert list(get_user_model().objects.values_list("username", "groups__name")) == [("carol", "support")]


def test_two_admins_creating_keys_for_one_new_service_at_once(make_person, person_client):
    from apps.ingest.models import Service

    client = person_client(make_person("admin", "ada"))
    with transaction.atomic():
        Service.objects.create(name="billing")  # the other admin's create, not yet committed
        thread, outcome = run_in_thread(
            lambda: client.post("/keys/", {"service": "billing", "stage": "prod", "label": ""})
        )
        wait_until_blocked()
    thread.join(5)

    assert outcome.value.status_code == 200
    assert list(ApiKey.objects.values_list("service__name", flat=True)) == ["billing"]
    assert AuditEntry.objects.filter(action=AuditEntry.KEY_CREATED).count() == 1
