"""With the database unreachable the API answers 503 with Retry-After, so clients retry."""

import requests

from tests.conftest import free_port


def test_database_unreachable_is_503_with_retry_after(start_portal):
    server = start_portal(DATABASE_URL=f"postgres://skywatch:skywatch@127.0.0.1:{free_port()}/skywatch")

    response = requests.post(
        server.url + "/api/v1/batch",
        json={"batch": [{"event": "search_made"}]},
        headers={"Authorization": "Bearer swk_0123abcd_whatever"},
        timeout=20,
    )

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "database is unavailable" in response.json()["detail"]


def test_readyz_names_the_database_when_it_is_unreachable(start_portal):
    server = start_portal(DATABASE_URL=f"postgres://skywatch:skywatch@127.0.0.1:{free_port()}/skywatch")

    response = requests.get(server.url + "/readyz", timeout=20)

    assert response.status_code == 503
    assert "database" in response.json()["down"]
