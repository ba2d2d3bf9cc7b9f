"""Health probes: /healthz is liveness only, /readyz names what is down."""

import socket

import pytest


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_login(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_with_every_service_up(client, broker_url, elasticsearch_url, make_person):
    client.force_login(make_person("admin"))

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "broker", "elasticsearch"}
    assert body["checks"]["database"]["detail"] == "postgresql"
    assert body["checks"]["elasticsearch"]["detail"].startswith("elasticsearch: green, ")


@pytest.mark.django_db
def test_readyz_names_the_database_when_its_schema_is_behind_the_code(
    client, broker_url, elasticsearch_url, make_person
):
    from django.db import connection

    client.force_login(make_person("admin"))
    with connection.cursor() as cursor:  # as if the newest migration had not been run (rolled back after)
        cursor.execute(
            "DELETE FROM django_migrations"
            " WHERE id = (SELECT max(id) FROM django_migrations WHERE app = 'ingest')"
        )

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"]
    assert "1 migrations not applied (run manage.py migrate): ingest." in body["checks"]["database"]["detail"]


@pytest.mark.django_db
def test_readyz_names_redis_when_the_broker_is_unreachable(client, settings, elasticsearch_url):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["broker"]
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_elasticsearch_when_it_is_unreachable(client, settings, broker_url, make_person):
    settings.ELASTICSEARCH_URL = f"http://127.0.0.1:{closed_port()}"
    client.force_login(make_person("admin"))

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["elasticsearch"]
    assert "127.0.0.1" in body["checks"]["elasticsearch"]["detail"]


SECRET = "s3cret-Pa55word"


@pytest.mark.django_db
def test_anonymous_readyz_says_what_is_down_but_not_where_or_with_what(client, settings, broker_url):
    settings.ELASTICSEARCH_URL = f"http://elastic:{SECRET}@127.0.0.1:{closed_port()}"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["elasticsearch"]
    assert body["checks"]["elasticsearch"] == {"ok": False}
    assert SECRET not in response.content.decode()


@pytest.mark.django_db
def test_admins_see_where_the_search_backend_failed_without_its_password(
    client, settings, broker_url, make_person
):
    settings.ELASTICSEARCH_URL = f"http://elastic:{SECRET}@127.0.0.1:{closed_port()}"
    client.force_login(make_person("admin"))

    response = client.get("/readyz")

    detail = response.json()["checks"]["elasticsearch"]["detail"]
    assert "http://***@127.0.0.1:" in detail
    assert SECRET not in response.content.decode()
    assert "elastic:" not in detail


@pytest.mark.django_db
def test_support_staff_without_admin_get_no_details(client, settings, broker_url, make_person):
    settings.ELASTICSEARCH_URL = f"http://elastic:{SECRET}@127.0.0.1:{closed_port()}"
    client.force_login(make_person("support"))

    response = client.get("/readyz")

    assert response.json()["checks"]["elasticsearch"] == {"ok": False}


@pytest.mark.django_db
def test_a_search_outage_logs_no_credentials(api_client, settings, make_person, caplog):
    settings.ELASTICSEARCH_URL = f"http://elastic:{SECRET}@127.0.0.1:{closed_port()}"
    settings.TRACE_BACKEND = "apps.traces.search.elasticsearch.ElasticsearchTraceBackend"
    api_client.force_login(make_person("support"))

    response = api_client.get("/api/v1/traces/some-correlation-id")

    assert response.status_code == 503
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "search backend unavailable" in logged
    assert "***@127.0.0.1" in logged
    assert SECRET not in logged
    assert SECRET not in response.content.decode()


def test_every_portal_log_handler_cuts_credentials_out_of_lines():
    """The stdout handler and the handler that ships the portal's own lines into its events."""
    import logging

    from django.conf import settings as django_settings

    for name, config in django_settings.LOGGING["handlers"].items():
        assert "redact" in config.get("filters", []), f"handler {name} does not redact"
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "cannot reach %s", (f"redis://:{SECRET}@10.0.0.1:6379/0",), None
    )
    handler = next(h for h in logging.getLogger().handlers if h.filters)
    assert handler.filter(record)
    assert SECRET not in handler.format(record)
    assert "redis://***@10.0.0.1:6379/0" in handler.format(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A long run of scheme characters before the URL (such a line once cost quadratic time).
        ("a." * 4000 + f" via https://u:{SECRET}@h/x", "a." * 4000 + " via https://***@h/x"),
        ("a." * 4000 + "@", "a." * 4000 + "@"),  # an "@" but no URL: unchanged
        (f"postgres+psycopg://u:{SECRET}@db:5432/x", "postgres+psycopg://***@db:5432/x"),
    ],
    ids=["after-a-long-run", "no-url", "compound-scheme"],
)
def test_credentials_are_cut_out_of_any_line(text, expected):
    from apps.common.redact import redact_text

    assert redact_text(text) == expected


# --- Elasticsearch cluster health: a real index on the real node, made yellow or red on purpose.


@pytest.fixture
def portal_index(settings, clean_search_index):
    """Return a function that creates an index among the portal's daily indices with the given settings."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import alias_name, es_client

    settings.TRACE_BACKEND = "apps.traces.search.elasticsearch.ElasticsearchTraceBackend"
    _backend_for.cache_clear()

    def create(day: str, **index_settings) -> str:
        name = f"{alias_name()}-{day}"
        # wait_for_active_shards=0: the call returns even when (on purpose) no copy can be assigned.
        es_client().indices.create(index=name, settings=index_settings, wait_for_active_shards="0")
        return name

    yield create
    _backend_for.cache_clear()


@pytest.mark.django_db
def test_readyz_is_200_but_degraded_with_a_yellow_cluster(client, broker_url, make_person, portal_index):
    # One node cannot hold a replica beside its primary: a replica stays unassigned, the index is yellow.
    portal_index("2026.01.01", number_of_shards=1, number_of_replicas=1)
    client.force_login(make_person("admin"))

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["down"], body["degraded"]) == ("degraded", [], ["elasticsearch"])
    assert body["checks"]["elasticsearch"]["ok"] is True
    assert body["checks"]["elasticsearch"]["detail"] == (
        "elasticsearch: yellow, 1 unassigned replica shards, 1 nodes"
    )


@pytest.mark.django_db
def test_readyz_is_503_naming_elasticsearch_red_when_a_primary_is_unassigned(
    client, broker_url, make_person, portal_index
):
    # A primary that may only live on a node that does not exist is never assigned: the index is red.
    portal_index(
        "2026.01.02",
        number_of_shards=1,
        number_of_replicas=0,
        **{"routing.allocation.require._name": "no-such-node"},
    )
    client.force_login(make_person("admin"))

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["down"], body["degraded"]) == ("unavailable", ["elasticsearch"], [])
    detail = body["checks"]["elasticsearch"]["detail"]
    assert "cluster health red, 1 unassigned primary shards" in detail


@pytest.mark.django_db
def test_anonymous_readyz_names_a_degraded_service_without_its_health(client, broker_url, portal_index):
    portal_index("2026.01.03", number_of_shards=1, number_of_replicas=1)

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] == ["elasticsearch"]
    assert body["checks"]["elasticsearch"] == {"ok": True}


@pytest.mark.django_db
def test_another_applications_red_index_leaves_the_portal_ready(
    client, broker_url, make_person, portal_index
):
    """Only the portal's own indices count: a shared cluster's other tenants do not make it unready."""
    from apps.traces.search.elasticsearch import alias_name, es_client

    other = f"{alias_name()}x-other-app"  # outside `<prefix>-*`
    es_client().indices.create(
        index=other,
        settings={"number_of_replicas": 0, "routing.allocation.require._name": "no-such-node"},
        wait_for_active_shards="0",
    )
    try:
        client.force_login(make_person("admin"))
        response = client.get("/readyz")
    finally:
        es_client().indices.delete(index=other)

    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["elasticsearch"]["detail"].startswith("elasticsearch: green")


@pytest.mark.django_db
def test_readyz_in_the_embedded_mode_is_ok_with_search_on_the_database(client, settings, make_person):
    from apps.traces.search import _backend_for

    settings.CELERY_BROKER_URL = ""
    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    _backend_for.cache_clear()
    client.force_login(make_person("admin"))

    response = client.get("/readyz")
    _backend_for.cache_clear()

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["down"], body["degraded"]) == ("ok", [], [])
    assert body["checks"]["elasticsearch"]["detail"] == "database"
