"""A task round trip through the real Redis broker and a real worker process."""

from apps.common.tasks import ping_worker


def test_task_round_trip_through_real_broker_and_worker(celery_worker_process):
    result = ping_worker.apply_async(args=["hello"], queue=celery_worker_process.queue)

    answer = result.get(timeout=30)

    assert answer["payload"] == "hello"
    assert answer["host"]
    assert "common.ping_worker" in celery_worker_process.log_text()
