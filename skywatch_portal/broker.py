"""The Redis broker transport, with one fix: a worker survives losing Redis while it holds unacked tasks.

kombu's Redis channel puts a worker's unacknowledged messages back in their queue when the channel
closes. When Redis goes away, Celery closes the broken connection after its transport was detached, and
the restore builds a Redis client from a transport whose `client` is None: an AttributeError, which
Celery's `ignore_errors` does not ignore, so the worker stops with "Unrecoverable error" (celery and
kombu 5.7.0). Every worker holding ETA tasks (indexing retries while Elasticsearch is down, say) died on
a Redis restart and the pipeline stalled (found by the soak, soak/). Raising a connection error instead
lets Celery reconnect as it does for any broker outage. The messages stay where Redis keeps them
(restored after the visibility timeout) or, after a restart without persistence, are gone: the
pipeline's sweeper re-queues their events either way.
"""

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is closed; nothing to restore to")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
