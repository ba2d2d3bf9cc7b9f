"""The admin is a door like the others: what it does to keys and shows of raw events is audited."""

import pytest

from apps.accounts.models import AuditEntry
from apps.ingest.models import ApiKey, RawEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_site(client, make_person):
    person = make_person("admin", "ada")
    person.is_staff = True
    person.save(update_fields=["is_staff"])
    client.force_login(person)
    return client


def test_revoking_keys_in_the_admin_is_audited_per_key(admin_site, make_key):
    first, _ = make_key(service="crop-forecast")
    second, _ = make_key(service="ship-tracker")

    response = admin_site.post(
        "/admin/ingest/apikey/",
        {"action": "revoke", "_selected_action": [first.pk, second.pk]},
    )

    assert response.status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2
    entries = AuditEntry.objects.filter(action="key_revoked").order_by("target")
    assert [(e.target, e.via, e.actor_name) for e in entries] == sorted(
        [(first.prefix, "admin", "ada"), (second.prefix, "admin", "ada")]
    )


def test_searching_and_opening_raw_events_in_the_admin_is_audited(admin_site, store_events):
    [pk] = store_events([{"event": "login", "user_id": "u-42", "correlation_id": "req-9"}])

    listing = admin_site.get("/admin/ingest/rawevent/", {"q": "u-42"})
    detail = admin_site.get(f"/admin/ingest/rawevent/{pk}/change/")

    assert listing.status_code == 200 and detail.status_code == 200
    searched = AuditEntry.objects.get(action="requests_searched")
    assert (searched.via, searched.actor_name, searched.target) == (
        "admin",
        "ada",
        "raw events matching u-42",
    )
    opened = AuditEntry.objects.get(action="raw_event_viewed")
    assert opened.via == "admin" and "u-42" in opened.target


def test_browsing_the_admin_without_a_search_writes_no_entry(admin_site):
    assert admin_site.get("/admin/ingest/rawevent/").status_code == 200
    assert not AuditEntry.objects.exists()


def test_keys_cannot_be_deleted_in_the_admin_so_events_keep_the_key_that_sent_them(admin_site, store_events):
    [pk] = store_events([{"event": "search_made"}])
    key = ApiKey.objects.get()

    delete_page = admin_site.get(f"/admin/ingest/apikey/{key.pk}/delete/")
    deleted = admin_site.post(f"/admin/ingest/apikey/{key.pk}/delete/", {"post": "yes"})
    bulk = admin_site.post(
        "/admin/ingest/apikey/", {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"}
    )

    assert (delete_page.status_code, deleted.status_code) == (403, 403)
    assert bulk.status_code == 302  # the action is not offered: the list page answers "no action selected"
    assert ApiKey.objects.filter(pk=key.pk).exists()
    assert RawEvent.objects.get(pk=pk).api_key_id == key.pk


def test_raw_events_listed_by_a_filter_in_the_url_are_audited(admin_site, store_events):
    store_events([{"event": "login", "user_id": "alice", "correlation_id": "req-alice"}])

    listing = admin_site.get("/admin/ingest/rawevent/", {"user_id": "alice", "o": "1", "p": "0"})

    assert listing.status_code == 200 and "req-alice" in listing.content.decode()
    searched = AuditEntry.objects.get(action="requests_searched")
    assert (searched.via, searched.actor_name, searched.target) == (
        "admin",
        "ada",
        "raw events where user_id=alice",
    )


def test_raw_events_cannot_be_deleted_in_the_admin_where_the_rollups_and_index_would_keep_them(
    admin_site, store_events
):
    [pk] = store_events([{"event": "login", "user_id": "alice"}])

    deleted = admin_site.post(f"/admin/ingest/rawevent/{pk}/delete/", {"post": "yes"})
    admin_site.post(
        "/admin/ingest/rawevent/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
    )

    assert deleted.status_code == 403
    assert RawEvent.objects.filter(pk=pk).exists()
