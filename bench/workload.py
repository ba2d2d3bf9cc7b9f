"""Synthetic but realistic events: about 20 event names, 5 services, 1000 users, 2-3 numeric properties.

Generated from a seed so that two phases of a benchmark (the endpoint and its baseline) store exactly the
same events, and free of Django so that spawned client processes can import it cheaply.
"""

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

EVENT_NAMES = (
    "search_made",
    "page_viewed",
    "forecast_requested",
    "forecast_served",
    "map_tile_loaded",
    "ship_position_received",
    "plane_position_received",
    "alert_raised",
    "alert_cleared",
    "report_exported",
    "login_succeeded",
    "login_failed",
    "job_started",
    "job_finished",
    "job_failed",
    "cache_hit",
    "cache_miss",
    "upload_finished",
    "subscription_changed",
    "api_call_made",
)
SERVICES = ("crop-forecast", "pipeline-monitor", "plane-tracker", "ship-tracker", "search-api")
USERS = 1000
REGIONS = ("eu-west", "eu-north", "us-east", "ap-south")


def _properties(rng: random.Random, name_index: int) -> dict[str, Any]:
    props: dict[str, Any] = {
        "duration_ms": round(rng.lognormvariate(3.5, 0.8), 2),
        "n_results": rng.randint(0, 200),
        "region": rng.choice(REGIONS),
    }
    if name_index % 2 == 0:  # half of the event names carry a third number
        props["bytes"] = rng.randint(200, 2_000_000)
    return props


def make_events(
    count: int, *, seed: int, end: datetime | None = None, span: timedelta = timedelta(days=2)
) -> list[dict[str, Any]]:
    """Return `count` canonical events (what conform would produce) with timestamps in `span` before `end`.

    Keys: event_id (UUID), service, event, user_id, correlation_id, timestamp (aware UTC datetime) and
    properties. Events come in time order, as they do from live services.
    """
    rng = random.Random(seed)
    end = end or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    span_s = span.total_seconds()
    offsets = sorted(rng.random() * span_s for _ in range(count))
    events = []
    for offset in offsets:
        name_index = rng.randrange(len(EVENT_NAMES))
        events.append(
            {
                "event_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "service": SERVICES[rng.randrange(len(SERVICES))],
                "event": EVENT_NAMES[name_index],
                "user_id": f"user-{rng.randrange(USERS)}",
                "correlation_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "timestamp": (end - timedelta(seconds=span_s - offset)).replace(microsecond=0),
                "properties": _properties(rng, name_index),
            }
        )
    return events


def as_sent(event: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON a service sends for an event (no service/stage: the key implies them)."""
    return {
        "event_id": str(event["event_id"]),
        "event": event["event"],
        "user_id": event["user_id"],
        "correlation_id": event["correlation_id"],
        "timestamp": event["timestamp"].isoformat(),
        "properties": event["properties"],
    }
