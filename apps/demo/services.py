"""Seed the demo: the generated traffic goes in through `events_ingest`, service by service with each one's
own key, exactly as `POST /api/v1/batch` stores it; the pipeline then rolls it up and indexes it (in-process
in the embedded mode, on the workers when there is a broker)."""

from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.annotations.services import create_annotation
from apps.ingest.models import ApiKey
from apps.ingest.services import events_ingest, service_key_create

from .traffic import STAGE, DemoAnnotation, DemoPlan, demo_items

# The API's largest batch: the demo sends what a Tracker at full speed would.
BATCH_SIZE = 1000
DEMO_KEY_LABEL = "demo data (seed_demo)"


@dataclass
class SeedOutcome:
    """What a seed sent (items by type, their users and services) and what ingestion made of it."""

    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    by_type: Counter = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    annotation: DemoAnnotation | None = None
    # What became of the annotation: "stored" or "no new events" (a repeated seed).
    annotation_state: str = ""


def demo_seed(*, plan: DemoPlan) -> SeedOutcome:
    """Send the plan's traffic through ingestion in batches per service; return what was stored."""
    # A window too short to hold the spike's afternoon (one day ending in the morning) has no deploy either.
    deploy = plan.deploy if plan.start <= plan.deploy.timestamp <= plan.end else None
    outcome = SeedOutcome(annotation=deploy)
    keys: dict[str, ApiKey] = {}
    pending: dict[str, list[dict]] = {}
    for service, item in demo_items(plan):
        batch = pending.setdefault(service, [])
        batch.append(item)
        if len(batch) >= BATCH_SIZE:
            _send(service, batch, keys, outcome)
            pending[service] = []
    for service, batch in pending.items():
        if batch:
            _send(service, batch, keys, outcome)
    # A repeated seed stores no event twice (the same event ids), and so no second deploy either.
    if deploy is not None:
        outcome.annotation_state = _annotate(deploy) if outcome.stored else "no new events"
    return outcome


def _send(service: str, batch: list[dict], keys: dict[str, ApiKey], outcome: SeedOutcome) -> None:
    if service not in keys:
        keys[service] = _demo_key(service)
    result = events_ingest(
        items=batch, api_key=keys[service], received_at=timezone.now(), ingest_node=settings.INGEST_NODE
    )
    outcome.stored += result.accepted
    outcome.duplicates += result.duplicates
    outcome.services.add(service)
    for refused in result.rejected:  # never expected: the generator makes only valid items
        outcome.rejected.append({"service": service, **refused})
    outcome.sent += len(batch)
    for item in batch:
        outcome.by_type[item.get("type", "metric")] += 1
        user = item.get("user_id") or item.get("userId")
        if user:
            outcome.users.add(user)


def _demo_key(service: str) -> ApiKey:
    """Return the demo's key for a service, made once (audited, as any key) and reused by later seeds."""
    existing = (
        ApiKey.objects.usable(timezone.now())
        .filter(service__name=service, stage=STAGE, label=DEMO_KEY_LABEL, can_forward=False)
        .select_related("service")
        .first()
    )
    if existing is not None:
        return existing
    api_key, _secret = service_key_create(
        service_name=service, stage=STAGE, label=DEMO_KEY_LABEL, actor=Actor.command("seed_demo")
    )
    return api_key


def _annotate(annotation: DemoAnnotation) -> str:
    """Store the deploy annotation, as a deploy step would post it with the service's key."""
    create_annotation(
        service=annotation.service, text=annotation.text, timestamp=annotation.timestamp, stage=STAGE
    )
    return "stored"
