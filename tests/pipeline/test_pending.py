"""New events reach the pipeline through the pending list in the broker's Redis: one record per stored
batch, one drain message however many batches wait, chunks of PIPELINE_CHUNK_SIZE events."""

import json

import pytest
import redis
from django.db import OperationalError

from apps.ingest.models import RawEvent
from apps.pipeline import pending, services
from apps.pipeline.tasks import drain_pending
from tests.pipeline.test_pipeline import day_count, indexed_count, make_events, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def broker(broker_url):
    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def queued_tasks(client: redis.Redis) -> list[dict]:
    """The Celery messages waiting in the default queue, oldest first: their task names and ETAs."""
    messages = [json.loads(raw) for raw in reversed(client.lrange("default", 0, -1))]
    return [{"task": m["headers"]["task"], "eta": m["headers"].get("eta")} for m in messages]


def stored_ids() -> list[int]:
    return list(RawEvent.objects.order_by("pk").values_list("pk", flat=True))


def test_stored_batches_wait_on_the_list_behind_one_drain_message(api_client, make_key, broker):
    _, key = make_key()

    for _ in range(3):
        send(api_client, key, make_events(4))

    assert pending.pending_events() == stored_ids()
    assert [task["task"] for task in queued_tasks(broker)] == ["pipeline.drain_pending"]


def test_a_drain_takes_one_chunk_and_queues_the_next_while_records_remain(
    api_client, make_key, broker, settings, clean_search_index
):
    settings.PIPELINE_CHUNK_SIZE = 8
    _, key = make_key()
    for _ in range(3):
        send(api_client, key, make_events(4))
    ids = stored_ids()
    broker.delete("default")  # the drain message the batches queued: run here instead

    drain_pending.apply().get()

    assert day_count() == 8  # two batches' records make the chunk
    assert pending.pending_events() == ids[8:]
    assert [task["task"] for task in queued_tasks(broker)] == ["pipeline.drain_pending"]
    broker.delete("default")

    drain_pending.apply().get()

    assert (day_count(), indexed_count()) == (12, 12)
    assert pending.pending_events() == []
    assert queued_tasks(broker) == []  # nothing left: no drain for nothing
    send(api_client, key, make_events(1))
    assert [task["task"] for task in queued_tasks(broker)] == ["pipeline.drain_pending"]


def test_a_chunk_that_fails_goes_back_to_the_front_for_a_later_drain(
    api_client, make_key, broker, monkeypatch
):
    _, key = make_key()
    send(api_client, key, make_events(5))
    ids = stored_ids()
    broker.delete("default")

    def database_gone(**kwargs):  # failure injection: PostgreSQL dropping the worker's connection
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "process_chunk", database_gone)
    with pytest.raises(OperationalError):
        drain_pending.apply().get()

    assert pending.pending_events() == ids
    [retry] = queued_tasks(broker)
    assert retry["task"] == "pipeline.drain_pending" and retry["eta"] is not None
    assert RawEvent.objects.awaiting_aggregation().count() == 5


def test_events_whose_senders_gave_no_client_times_are_read_from_every_partition(broker, clean_search_index):
    from tests.factories import RawEventFactory

    known = RawEventFactory.create_batch(2)
    unknown = RawEventFactory.create_batch(2, client_timestamp=None)
    pending.pending_append([e.pk for e in known], (known[0].client_timestamp, known[1].client_timestamp))
    pending.pending_append([e.pk for e in unknown], None)  # as replay announces: bounds not given

    ids, bounds = pending.chunk_take(10)

    assert (ids, bounds) == ([e.pk for e in known + unknown], None)
    outcome = services.process_chunk(event_ids=ids, client_times=bounds)
    assert outcome.aggregated.done == 4


def test_a_chunk_of_single_event_records_takes_a_few_round_trips_not_one_per_event(broker, monkeypatch):
    from tests.factories import RawEventFactory

    events = RawEventFactory.create_batch(30)
    for event in events[:25]:  # as /api/v1/events leaves them: one record per event
        pending.pending_append([event.pk], (event.client_timestamp, event.client_timestamp))
    pending.pending_append(
        [e.pk for e in events[25:]], (events[25].client_timestamp, events[-1].client_timestamp)
    )
    pops: list[int | None] = []
    real_lpop = redis.Redis.lpop

    def counted_lpop(self, name, count=None):  # the real command, counted
        pops.append(count)
        return real_lpop(self, name, count)

    monkeypatch.setattr(redis.Redis, "lpop", counted_lpop)
    first = pending.chunk_take(20)
    rest = pending.chunk_take(20)

    assert first[0] == [e.pk for e in events[:20]]
    assert rest[0] == [e.pk for e in events[20:]]
    assert len(pops) <= 5, pops


def test_a_chunk_in_hand_is_processed_when_redis_restarts_after_its_pop(
    api_client, make_key, settings, tmp_path, clean_search_index, monkeypatch
):
    from tests.pipeline.test_broker_restart import PrivateRedis

    server = PrivateRedis(tmp_path)
    server.start()
    try:
        settings.CELERY_BROKER_URL = server.url  # the pending list on a Redis of its own, to restart
        _, key = make_key()
        send(api_client, key, make_events(2))
        send(api_client, key, make_events(3))
        real_take = pending.chunk_take

        def take_then_redis_goes_away(size):  # the real pop; the real Redis stops right after it
            taken = real_take(size)
            server.stop()
            return taken

        monkeypatch.setattr(pending, "chunk_take", take_then_redis_goes_away)
        drain_pending.apply().get()
    finally:
        server.stop()

    assert day_count() == 5
    assert not RawEvent.objects.awaiting_aggregation().exists()
