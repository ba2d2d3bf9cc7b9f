"""Diagnostic task: proves a worker consumes from the broker and can answer through the result backend."""

import socket

from celery import shared_task


@shared_task(name="common.ping_worker", ignore_result=False, time_limit=10)
def ping_worker(payload: str) -> dict:
    """Return the payload with the answering worker's host name."""
    return {"payload": payload, "host": socket.gethostname()}
