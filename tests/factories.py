"""Test data: raw events as the ingest path would store them, and their keys (factory_boy)."""

import uuid
from datetime import UTC, datetime

import factory

from apps.common.secrets import SERVICE_KEY_KIND, new_secret, secret_hash
from apps.ingest.models import ApiKey, RawEvent, Service

T0 = datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("name",)

    name = "search-api"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    service = factory.SubFactory(ServiceFactory)
    stage = "prod"
    prefix = factory.LazyFunction(lambda: new_secret(SERVICE_KEY_KIND)[0])
    key_hash = factory.LazyAttribute(lambda key: secret_hash(f"secret-of-{key.prefix}"))


class RawEventFactory(factory.django.DjangoModelFactory):
    """A stored event not yet aggregated or indexed (override `properties`, `timestamp`, … as needed)."""

    class Meta:
        model = RawEvent

    event_id = factory.LazyFunction(uuid.uuid4)
    service = "search-api"
    stage = "prod"
    event = "search_made"
    timestamp = T0
    received_at = T0
    api_key = factory.SubFactory(ApiKeyFactory)
