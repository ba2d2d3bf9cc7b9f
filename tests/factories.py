"""Test data: raw events as the ingest path would store them, and their keys (factory_boy)."""

import uuid
from datetime import UTC, datetime

import factory

from apps.common.secrets import SERVICE_KEY_KIND, new_secret, secret_hash
from apps.ingest.models import AggregationBacklog, ApiKey, RawEvent, Service

T0 = datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("name",)

    name = "search-api"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A service key stored as the portal stores it (test data: made without the audited service)."""

    class Meta:
        model = ApiKey

    service = factory.SubFactory(ServiceFactory)
    stage = "prod"
    prefix = factory.LazyFunction(lambda: new_secret(SERVICE_KEY_KIND)[0])
    key_hash = factory.LazyAttribute(lambda key: secret_hash(f"unknown secret of {key.prefix}"))


def make_api_key(*, service: str = "search-api", stage: str = "prod", can_forward: bool = False):
    """Return a working key and its secret, for tests that send events."""
    prefix, raw_key = new_secret(SERVICE_KEY_KIND)
    api_key = ApiKeyFactory(
        service=ServiceFactory(name=service),
        stage=stage,
        can_forward=can_forward,
        prefix=prefix,
        key_hash=secret_hash(raw_key),
    )
    return api_key, raw_key


class RawEventFactory(factory.django.DjangoModelFactory):
    """A stored event not yet aggregated or indexed (override `properties`, `timestamp`, … as needed)."""

    class Meta:
        model = RawEvent
        skip_postgeneration_save = True

    event_id = factory.LazyFunction(uuid.uuid4)
    service = "search-api"
    stage = "prod"
    event = "search_made"
    timestamp = T0
    received_at = T0
    client_timestamp = factory.SelfAttribute("timestamp")  # sent with no clock skew
    api_key = factory.SubFactory(ApiKeyFactory)

    @factory.post_generation
    def awaiting_aggregation(self, create: bool, extracted: bool | None, **kwargs) -> None:
        """In the aggregation backlog, as ingestion leaves it (`awaiting_aggregation=False`: counted)."""
        if create and extracted is not False:
            AggregationBacklog.objects.create(
                raw_id=self.pk, client_timestamp=self.client_timestamp, received_at=self.received_at
            )
