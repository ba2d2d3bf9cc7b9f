"""With PostgreSQL refusing connections or cancelling a statement at its timeout, every page and read API
answers 503 with Retry-After and says so (a page in HTML, the API as JSON), never a 500."""

import threading

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = [
    "/",
    "/dashboards/?event=search_made&interval=day&range=7d",
    "/dashboards/?event=search_made&interval=day&range=7d&format=csv",
    "/dashboards/?analysis=funnel&step=a&step=b&range=7d&window=86400",
    "/dashboards/d/",
    "/traces/?user_id=u-1",
    "/traces/req-1/",
    "/users/u-1/",
]
APIS = [
    "/api/v1/metrics/series?event=x&interval=day&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z",
    "/api/v1/traces/req-1",
    "/api/v1/users/u-1/requests",
    "/api/v1/coverage",
]


@pytest.fixture
def signed_in(client, make_person, database_traces):
    """The test client signed in as an admin (every page open to it); trace reads on the database."""
    client.force_login(make_person("admin"))
    client.raise_request_exception = False
    return client


@pytest.fixture
def database_refuses():
    """Point the connection at a loopback port nothing listens on (a PostgreSQL that refuses)."""
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"
    yield
    connection.close()
    connection.settings_dict["PORT"] = saved


@pytest.mark.parametrize("path", PAGES)
def test_a_page_says_the_database_is_unavailable_with_503(signed_in, database_refuses, path):
    response = signed_in.get(path)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response["Content-Type"].startswith("text/html")
    assert 'id="database-unavailable"' in response.content.decode()
    assert "database is not answering" in response.content.decode()


@pytest.mark.parametrize("path", APIS)
def test_a_read_api_says_the_database_is_unavailable_with_503(signed_in, database_refuses, path):
    response = signed_in.get(path)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"] == "The database is unavailable. Retry later."


def test_readyz_for_a_signed_in_person_names_the_database_when_it_refuses(signed_in, database_refuses):
    """The overview links /readyz: a person signed in (a session cookie) must learn what is down too."""
    response = signed_in.get("/readyz")

    assert response.status_code == 503
    assert "database" in response.json()["down"]  # trace search here is on the database: down with it


@pytest.fixture
def statement_timeout():
    """Hold an exclusive lock on the rollups and the raw events from another session, and give this
    session a 300 ms statement timeout: the page's reads wait on the lock until PostgreSQL cancels them."""
    settings_dict = connection.settings_dict
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with psycopg.connect(
            host=settings_dict["HOST"],
            port=settings_dict["PORT"],
            user=settings_dict["USER"],
            password=settings_dict["PASSWORD"],
            dbname=settings_dict["NAME"],
        ) as conn:
            conn.execute("LOCK TABLE metrics_rollupcount, ingest_rawevent IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '300ms'")
    yield
    release.set()
    holder.join()
    connection.close()  # the timeout goes with the session


@pytest.mark.parametrize(
    "path",
    [
        "/dashboards/?event=search_made&interval=day&range=7d",
        "/dashboards/?event=search_made&interval=day&range=7d&format=csv",
        "/traces/?user_id=u-1",
    ],
)
def test_a_page_whose_statement_timed_out_says_so_with_503(signed_in, statement_timeout, path):
    response = signed_in.get(path)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "did not answer in time" in response.content.decode()


def test_a_read_api_whose_statement_timed_out_says_so_with_503(signed_in, statement_timeout):
    response = signed_in.get(APIS[0])

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"] == "The database did not answer in time. Retry later."
