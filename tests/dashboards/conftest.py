"""Dashboards fixtures: a signed-in product person, and events already in the rollups."""

import pytest


@pytest.fixture
def product_client(client, make_person):
    client.force_login(make_person("product"))
    return client


@pytest.fixture
def aggregate_events(store_events):
    """Return a function that stores events and adds them to the rollups, as the pipeline would."""
    from apps.pipeline.services import aggregate_chunk

    def store(events: list[dict]) -> list[int]:
        ids = store_events(events)
        outcome = aggregate_chunk(event_ids=ids)
        assert outcome.done == len(ids), outcome
        return ids

    return store
