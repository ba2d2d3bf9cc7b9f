"""Admins manage service keys in the portal: create (shown once), rotate with a grace period, revoke."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEntry
from apps.ingest.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_in(client, make_person):
    client.force_login(make_person("admin", "ada"))
    return client


def send(api_client, key):
    return api_client.generic(
        "POST",
        "/api/v1/events",
        json.dumps({"event": "x"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


def shown_key(response) -> str:
    return re.search(r'<pre class="secret" id="new-key">([^<]+)</pre>', response.content.decode()).group(1)


def test_create_shows_the_key_once_and_stores_only_its_hash(admin_in, api_client):
    response = admin_in.post("/keys/", {"service": "ship-tracker", "stage": "prod", "label": "main"})

    key = shown_key(response)
    stored = ApiKey.objects.get()
    assert key.startswith(f"swk_{stored.prefix}_") and key not in stored.key_hash
    assert send(api_client, key).status_code == 202
    listing = admin_in.get("/keys/").content.decode()
    assert stored.prefix in listing and key not in listing
    assert AuditEntry.objects.filter(action="key_created", target=stored.prefix, actor_name="ada").exists()


def test_listing_shows_last_use_and_volume(admin_in, api_client, make_key):
    api_key, key = make_key(service="crop-forecast")
    for _ in range(3):
        send(api_client, key)

    page = admin_in.get("/keys/").content.decode()

    row = page[page.index(api_key.prefix) :]
    assert "<td>3</td>" in row[:600]
    assert "never" not in row[:600]


def test_rotation_keeps_the_old_key_for_the_grace_period(admin_in, api_client, make_key):
    old, old_key = make_key(service="crop-forecast", forwarder=True)

    response = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "1h"})

    new_key = shown_key(response)
    successor = ApiKey.objects.exclude(pk=old.pk).get()
    assert (successor.service, successor.stage, successor.can_forward) == (old.service, old.stage, True)
    assert send(api_client, new_key).status_code == 202
    assert send(api_client, old_key).status_code == 202  # still in its grace period
    # The grace ends (saved through the model: this process forgets its cached copy of the key at once).
    old.refresh_from_db()
    old.expires_at = timezone.now() - timedelta(seconds=1)
    old.save(update_fields=["expires_at"])
    expired = send(api_client, old_key)
    assert expired.status_code == 403 and "rotated" in expired.json()["detail"]
    assert (
        AuditEntry.objects.filter(action="key_rotated").get().target == f"{old.prefix} -> {successor.prefix}"
    )


def test_revocation_is_effective_on_the_next_request(admin_in, api_client, make_key):
    api_key, key = make_key()
    assert send(api_client, key).status_code == 202

    admin_in.post(f"/keys/{api_key.prefix}/revoke/")

    assert send(api_client, key).status_code == 403
    assert AuditEntry.objects.filter(action="key_revoked", target=api_key.prefix).exists()


def test_a_bad_service_name_is_refused_with_a_message(admin_in):
    response = admin_in.post("/keys/", {"service": "Ship Tracker!", "stage": "prod"})

    assert response.status_code == 400
    assert "lowercase letters" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("role", ["support", "product"])
def test_only_admins_manage_keys(client, make_person, make_key, role):
    api_key, _ = make_key()
    client.force_login(make_person(role))

    assert client.get("/keys/").status_code == 403
    assert client.post(f"/keys/{api_key.prefix}/revoke/").status_code == 403
    assert ApiKey.objects.get().revoked_at is None


def test_an_expired_key_cannot_be_rotated_into_a_working_one(admin_in, api_client, make_key):
    old, old_key = make_key(service="crop-forecast")
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "1h"})

    assert response.status_code == 404
    assert ApiKey.objects.count() == 1
    assert not AuditEntry.objects.filter(action="key_rotated").exists()
    listing = admin_in.get("/keys/").content.decode()
    assert f"/keys/{old.prefix}/rotate/" not in listing and "expired" in listing


def test_pages_that_show_a_secret_once_are_never_cached(admin_in, make_key):
    created = admin_in.post("/keys/", {"service": "ship-tracker", "stage": "prod"})
    old, _ = make_key(service="crop-forecast")
    rotated = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "1h"})
    token = admin_in.post("/account/tokens/", {"label": "laptop"})

    for response in (created, rotated, token):
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        assert "private" in response["Cache-Control"]


def test_the_key_list_reads_a_fixed_number_of_queries(admin_in, make_key, django_assert_max_num_queries):
    for i in range(30):
        make_key(service=f"svc-{i}")

    with django_assert_max_num_queries(6):  # session, user, roles, keys with services, volumes
        response = admin_in.get("/keys/")

    assert response.status_code == 200
    assert response.content.decode().count("/revoke/") == 30


@pytest.mark.parametrize("stage", ["pr\tod", "pr\x07od"])
def test_a_stage_with_a_control_character_is_refused_with_a_message(admin_in, stage):
    # Conform refuses every event of such a stage: the key could send nothing.
    response = admin_in.post("/keys/", {"service": "ship-tracker", "stage": stage})

    assert response.status_code == 400
    assert "printable characters" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_an_address_that_names_no_key_is_404(admin_in, action):
    for prefix in ("%00", "a%00b", "%E2%80%A8", "..."):
        assert admin_in.post(f"/keys/{prefix}/{action}/", {"grace": "1h"}).status_code == 404


def test_a_second_submit_of_a_rotation_makes_no_second_successor(admin_in, api_client, make_key):
    old, _ = make_key(service="crop-forecast")
    first = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "24h"})

    again = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "24h"}, follow=True)

    assert send(api_client, shown_key(first)).status_code == 202
    assert ApiKey.objects.count() == 2
    assert "was rotated already" in again.content.decode()
    assert AuditEntry.objects.filter(action="key_rotated").count() == 1
    # Rotating again to end the grace sooner is still a rotation.
    sooner = admin_in.post(f"/keys/{old.prefix}/rotate/", {"grace": "1h"})
    assert sooner.status_code == 200 and ApiKey.objects.count() == 3
    old.refresh_from_db()
    assert old.expires_at < timezone.now() + timedelta(hours=1, minutes=1)


def test_a_service_name_with_a_line_break_is_refused(admin_in):
    response = admin_in.post("/keys/", {"service": "ship-tracker\n", "stage": "prod"})

    assert response.status_code == 400
    assert not ApiKey.objects.exists()
