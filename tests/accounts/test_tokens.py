"""Personal tokens read the APIs with their owner's role; revoked tokens stop at once."""

import re

import pytest

from apps.accounts.models import PersonalToken

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
