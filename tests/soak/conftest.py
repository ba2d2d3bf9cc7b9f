"""Fixtures of the soak's reconciliation tests."""

import pytest

from apps.traces.search import _backend_for
from tests.conftest import TRACE_BACKENDS


@pytest.fixture
def search_on_elasticsearch(settings, clean_search_index):
    """The soak reconciles against Elasticsearch: index there whatever the session's default is."""
    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    yield
    _backend_for.cache_clear()
