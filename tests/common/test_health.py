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
def test_readyz_is_200_with_every_service_up(client, broker_url, elasticsearch_url):
    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["checks"]) == {"database", "broker", "elasticsearch"}
    assert body["checks"]["database"]["detail"] == "postgresql"
    assert body["checks"]["elasticsearch"]["detail"] == "elasticsearch"


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
def test_readyz_names_elasticsearch_when_it_is_unreachable(client, settings, broker_url):
    settings.ELASTICSEARCH_URL = f"http://127.0.0.1:{closed_port()}"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["elasticsearch"]
    assert "127.0.0.1" in body["checks"]["elasticsearch"]["detail"]
