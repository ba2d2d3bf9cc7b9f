"""The portal's Elasticsearch connection works with elasticsearch-dsl against the real cluster."""

import uuid

import pytest
from django.conf import settings
from elasticsearch_dsl import Date, Document, Keyword, Text

from apps.traces.search.elasticsearch import es_client


@pytest.fixture
def scratch_index(elasticsearch_url):
    name = f"{settings.ELASTICSEARCH_INDEX_PREFIX}-scratch-{uuid.uuid4().hex[:8]}"
    yield name
    es_client().indices.delete(index=name, ignore_unavailable=True)


def test_index_write_and_find_again_with_elasticsearch_dsl(scratch_index):
    class Probe(Document):
        correlation_id = Keyword()
        message = Text()
        timestamp = Date()

        class Index:
            name = scratch_index

    Probe.init(using=es_client())
    Probe(correlation_id="cid-42", message="Downloaded img 1d3x5", timestamp="2017-10-30T17:42:10Z").save(
        using=es_client(), refresh=True
    )

    hits = Probe.search(using=es_client()).filter("term", correlation_id="cid-42").execute()

    assert len(hits) == 1
    assert hits[0].message == "Downloaded img 1d3x5"
    assert es_client().indices.get_mapping(index=scratch_index)[scratch_index]["mappings"]["properties"][
        "correlation_id"
    ] == {"type": "keyword"}
