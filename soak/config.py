"""The two soak profiles: the long one behind `make soak` and the short one inside `make test`."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SoakConfig:
    """Sizes and timings of one soak run (seconds unless named otherwise)."""

    mode: str
    instances: str  # which isolated instance set (instances.InstanceSet.named)
    services: int  # synthetic services, each with its own API key and Tracker
    requests_per_second: float  # correlation IDs started per second; each touches 1-3 services
    warmup: float  # steady traffic before the first fault
    calm: float  # steady traffic between two faults
    redis_outage: float  # Redis stopped before it is started again
    es_outage: float  # Elasticsearch stopped before it is started again (its start adds ~15 s)
    pg_outage: float  # PostgreSQL stopped before it is started again
    tail: float  # traffic after the last fault, before the clients flush
    resend_every: float  # a client re-sends an already acknowledged batch this often, same event_ids
    sweep_interval: int  # beat's sweeper period (PIPELINE_SWEEP_INTERVAL_SECONDS)
    sweep_grace: int  # age before the sweeper re-queues an event (PIPELINE_SWEEP_GRACE_SECONDS)
    # The faults in turn. The short profile stops Elasticsearch first and goes on with the faults that
    # need no services.sh (it serializes its commands) while the JVM starts, which takes 15-40 s.
    order: tuple[str, ...] = ("worker_kill", "redis_restart", "redis_flush", "es_stop", "pg_restart")
    es_start_in_background: bool = False
    converge_timeout: float = 300.0  # the goal: all stores agree within 5 minutes of the last fault
    workers: int = 2  # Celery workers (one process each), so one can die while the other keeps going
    portal_workers: int = 2  # gunicorn workers
    flush_interval: float = 1.0  # each Tracker's batching interval
    seed: int = 9

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# About 6 minutes on 2 cores: twenty services, ~80 events/s, a 60 s search outage.
LONG = SoakConfig(
    mode="long",
    instances="soak",
    services=20,
    requests_per_second=20,
    warmup=20,
    calm=30,
    redis_outage=3,
    es_outage=60,
    pg_outage=5,
    tail=10,
    resend_every=2,
    sweep_interval=15,
    sweep_grace=30,
)

# About 90 s including the start of its own services: every fault once, shorter outages.
SHORT = SoakConfig(
    mode="short",
    instances="soak-short",
    services=6,
    requests_per_second=6,
    warmup=5,
    calm=3,
    redis_outage=1,
    es_outage=3,
    pg_outage=2,
    tail=2,
    resend_every=1,
    sweep_interval=2,
    sweep_grace=5,
    order=("es_stop", "worker_kill", "redis_flush", "redis_restart", "pg_restart"),
    es_start_in_background=True,
    converge_timeout=120,
)

PROFILES = {"long": LONG, "short": SHORT}
