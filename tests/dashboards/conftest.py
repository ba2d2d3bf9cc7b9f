"""Dashboards fixtures: the app's URLs and plotly.js finder until the project settings wire them in."""

import pytest
from django.urls import NoReverseMatch, reverse

PLOTLY_FINDER = "apps.dashboards.staticfiles.PlotlyJsFinder"


@pytest.fixture(autouse=True)
def dashboards_wired(settings):
    """Serve /dashboards/ and / (the overview) and vendor/plotly.min.js, as the portal's settings will."""
    try:
        reverse("dashboard-explorer", urlconf=settings.ROOT_URLCONF)
    except NoReverseMatch:
        settings.ROOT_URLCONF = "tests.dashboards.urls"
    if PLOTLY_FINDER not in settings.STATICFILES_FINDERS:
        settings.STATICFILES_FINDERS = [*settings.STATICFILES_FINDERS, PLOTLY_FINDER]


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
