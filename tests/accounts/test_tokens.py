"""Personal tokens read the APIs with their owner's role; revoked tokens stop at once, and changes made
elsewhere are seen within the grant cache's lifetime."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import PersonalToken
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db


def make_token(client, person) -> str:
    client.force_login(person)
    response = client.post("/account/tokens/", {"label": "notebook"})
    return re.search(r'id="new-key">([^<]+)<', response.content.decode()).group(1)


def test_a_token_reads_with_its_owners_role(client, api_client, make_person, store_events):
    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])
    raw = make_token(client, make_person("support"))

    answer = api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert answer.status_code == 200
    assert (
        api_client.get("/api/v1/metrics/series?event=x", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
        == 403
    )
    token = PersonalToken.objects.get()
    assert token.key_hash != raw and raw.startswith(f"swp_{token.prefix}_") and token.last_used_at is not None


def test_a_revoked_or_unknown_token_is_refused(client, api_client, make_person):
    raw = make_token(client, make_person("support"))
    prefix = PersonalToken.objects.get().prefix

    client.post(f"/account/tokens/{prefix}/revoke/")

    assert api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert (
        api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION="Bearer swp_00000000_nope").status_code
        == 401
    )


def test_a_service_key_does_not_open_the_read_apis(api_client, make_key):
    _, service_key = make_key()

    assert api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {service_key}").status_code in (
        401,
        403,
    )


def test_people_see_and_revoke_only_their_own_tokens(client, make_person):
    make_token(client, make_person("support", "sam"))
    theirs = PersonalToken.objects.get().prefix
    client.force_login(make_person("product", "pat"))

    assert theirs not in client.get("/account/tokens/").content.decode()
    client.post(f"/account/tokens/{theirs}/revoke/")
    assert PersonalToken.objects.get().revoked_at is None


def test_the_token_list_reads_a_fixed_number_of_queries(client, make_person, django_assert_max_num_queries):
    from apps.accounts.services import personal_token_create

    person = make_person("support")
    for i in range(25):
        personal_token_create(user=person, label=f"laptop {i}")
    client.force_login(person)

    with django_assert_max_num_queries(4):  # session, user, the tokens
        response = client.get("/account/tokens/")

    assert response.status_code == 200
    assert response.content.decode().count("laptop ") == 25


# What a token grants is cached for PERSONAL_TOKEN_CACHE_SECONDS: changes made here are seen at once, changes
# this process is not told of (another process's, with a local-memory cache) within that lifetime.


@pytest.fixture
def trail(store_events):
    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])


def read_trail(api_client, raw: str):
    return api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_a_revoked_token_stops_at_once_in_the_process_that_revoked_it(client, api_client, make_person, trail):
    raw = make_token(client, make_person("support"))
    assert read_trail(api_client, raw).status_code == 200  # its grant is cached now

    client.post(f"/account/tokens/{PersonalToken.objects.get().prefix}/revoke/")
    answer = read_trail(api_client, raw)

    assert answer.status_code == 401
    assert "was revoked" in answer.json()["detail"]


def test_a_token_revoked_elsewhere_stops_within_the_cache_lifetime(
    client, api_client, make_person, trail, settings
):
    settings.PERSONAL_TOKEN_CACHE_SECONDS = 1
    raw = make_token(client, make_person("support"))
    assert read_trail(api_client, raw).status_code == 200

    # As another process revokes it: the row changes and nobody tells this process's cache.
    PersonalToken.objects.update(revoked_at=timezone.now())
    assert read_trail(api_client, raw).status_code == 200  # the grant cached a moment ago
    wait_for(
        lambda: read_trail(api_client, raw).status_code != 200, timeout=5, message="the cached grant to end"
    )

    assert read_trail(api_client, raw).status_code == 401


def _remove_from_support(person, how: str) -> None:
    support = Group.objects.get(name="support")
    if how == "user.groups.remove":
        person.groups.remove(support)
    elif how == "user.groups.clear":
        person.groups.clear()
    elif how == "group.user_set.remove":
        support.user_set.remove(person)
    elif how == "group.user_set.clear":
        support.user_set.clear()
    elif how == "group deleted":
        support.delete()


@pytest.mark.parametrize(
    "how",
    [
        "user.groups.remove",
        "user.groups.clear",
        "group.user_set.remove",
        "group.user_set.clear",
        "group deleted",
    ],
)
def test_a_person_removed_from_support_loses_access_at_once(client, api_client, make_person, trail, how):
    person = make_person("support")
    raw = make_token(client, person)
    assert read_trail(api_client, raw).status_code == 200

    _remove_from_support(person, how)

    assert read_trail(api_client, raw).status_code == 403


def test_a_person_removed_from_support_elsewhere_loses_access_within_the_cache_lifetime(
    client, api_client, make_person, trail, settings
):
    settings.PERSONAL_TOKEN_CACHE_SECONDS = 1
    person = make_person("support")
    raw = make_token(client, person)
    assert read_trail(api_client, raw).status_code == 200

    # A bulk delete of memberships sends no m2m_changed: as seen from a process that did not make it.
    get_user_model().groups.through.objects.filter(user=person).delete()
    wait_for(
        lambda: read_trail(api_client, raw).status_code != 200, timeout=5, message="the cached grant to end"
    )

    assert read_trail(api_client, raw).status_code == 403


def test_a_deactivated_persons_token_stops_at_once(client, api_client, make_person, trail):
    person = make_person("support")
    raw = make_token(client, person)
    assert read_trail(api_client, raw).status_code == 200

    person.is_active = False
    person.save()

    assert read_trail(api_client, raw).status_code == 401


def test_a_person_given_the_support_role_reads_at_once(client, api_client, make_person, trail):
    person = make_person("product")
    raw = make_token(client, person)
    assert read_trail(api_client, raw).status_code == 403

    person.groups.add(Group.objects.get(name="support"))

    assert read_trail(api_client, raw).status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(client, api_client, make_person, trail, monkeypatch):
    raw = make_token(client, make_person("support"))

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert read_trail(api_client, raw).status_code == 200
    touches = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "accounts_personaltoken"')]
    assert len(touches) == 1
    first = PersonalToken.objects.get().last_used_at

    later = first + timedelta(seconds=61)
    monkeypatch.setattr(timezone, "now", lambda: later)
    read_trail(api_client, raw)

    assert PersonalToken.objects.get().last_used_at == later


def test_a_label_the_database_cannot_store_is_a_400_and_no_token_is_made(client, make_person):
    client.force_login(make_person("support"))

    response = client.post("/account/tokens/", {"label": "note\x00book"})

    assert response.status_code == 400
    assert "Null characters are not allowed" in response.content.decode()
    assert not PersonalToken.objects.exists()


def test_a_label_longer_than_100_characters_is_a_400(client, make_person):
    client.force_login(make_person("support"))

    assert client.post("/account/tokens/", {"label": "x" * 101}).status_code == 400
    assert not PersonalToken.objects.exists()


@pytest.mark.parametrize("prefix", ["%00", "a%00b", "%C3%A9"])
def test_revoking_a_prefix_no_token_can_have_is_a_404(client, make_person, prefix):
    client.force_login(make_person("support"))

    assert client.post(f"/account/tokens/{prefix}/revoke/").status_code == 404


def test_with_the_cache_down_tokens_revocation_and_sign_in_still_work(
    client, api_client, make_person, store_events, settings
):
    store_events([{"service": "gateway", "event": "x", "correlation_id": "req-1", "user_id": "u-1"}])
    person = make_person("support")
    raw = make_token(client, person)
    prefix = PersonalToken.objects.get().prefix
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }

    assert api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    assert client.post(f"/account/tokens/{prefix}/revoke/").status_code == 302
    assert api_client.get("/api/v1/traces/req-1", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    client.logout()
    wrong = client.post("/login/", {"username": person.username, "password": "wrong"})
    assert b"enter a correct username and password" in wrong.content
    client.post("/login/", {"username": person.username, "password": "correct-horse-battery"})
    assert client.session["_auth_user_id"] == str(person.pk)
