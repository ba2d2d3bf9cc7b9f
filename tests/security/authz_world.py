"""One small portal for the authorization tests: events, people of every role, their tokens (one revoked),
service keys (working, revoked, rotated out, another service's), two people's dashboards, an annotation."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.accounts.services import personal_token_create, personal_token_revoke
from apps.annotations.models import Annotation
from apps.dashboards import services as dashboard_services
from apps.dashboards.models import Dashboard
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_revoke, service_key_rotate

PEOPLE = ("product", "support", "admin", "norole")
TOKENS = ("product_token", "support_token", "admin_token", "norole_token", "revoked_token")
KEYS = ("service_key", "revoked_key", "rotated_key", "other_key")
CALLERS = ("anonymous", *PEOPLE, *TOKENS, *KEYS)
PASSWORD = "correct-horse-battery"


@dataclass
class World:
    people: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)  # caller -> Bearer secret (tokens and keys)
    key_prefix: str = ""  # the working key's prefix
    other_prefix: str = ""
    raw_event_id: int = 0
    dashboard_slug: str = ""  # the product person's dashboard
    chart_id: int = 0
    others_slug: str = ""  # another product person's dashboard
    others_chart_id: int = 0
    annotation_id: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(tz=UTC))

    def fill(self, text: str) -> str:
        from django.contrib.contenttypes.models import ContentType

        return text.format(
            obj=_FirstObject(),
            dashboard_ct=ContentType.objects.get_for_model(Dashboard).pk,
            dashboard_id=Dashboard.objects.get(slug=self.dashboard_slug).pk,
            prefix=self.key_prefix,
            other_prefix=self.other_prefix,
            raw=self.raw_event_id,
            slug=self.dashboard_slug,
            chart=self.chart_id,
            others_slug=self.others_slug,
            others_chart=self.others_chart_id,
            annotation=self.annotation_id,
            admin_id=self.people["admin"].pk,
            product_id=self.people["product"].pk,
            at=self.at.strftime("%Y-%m-%dT%H:%M:%S") + "%2B00:00",
        )


class _FirstObject:
    """Formats as the primary key of the first row of a model: "{obj:auth.User}"."""

    def __format__(self, label: str) -> str:
        from django.apps import apps

        return str(apps.get_model(label).objects.order_by("pk").values_list("pk", flat=True).first())


def build_world(*, make_person, make_key, store_events) -> World:
    world = World()
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    world.at = at
    store_events(
        [
            {
                "service": "gateway",
                "type": "log",
                "level": "error",
                "event": "search",
                "message": "boom",
                "correlation_id": f"req-{who}",
                "user_id": who,
                "timestamp": at.isoformat(),
            }
            for who in ("alice", "bob")
        ]
        + [
            {
                "service": "gateway",
                "event": "search",
                "correlation_id": f"req-{who}",
                "user_id": who,
                "timestamp": at.isoformat(),
            }
            for who in ("alice", "bob")
        ]
    )
    world.raw_event_id = RawEvent.objects.order_by("pk").values_list("pk", flat=True).first()
    for role in ("product", "support", "admin"):
        world.people[role] = make_person(role)
    world.people["norole"] = get_user_model().objects.create_user("norole-person", password=PASSWORD)
    for role in PEOPLE:
        world.secrets[f"{role}_token"] = personal_token_create(user=world.people[role])[1]
    revoked, world.secrets["revoked_token"] = personal_token_create(user=world.people["support"])
    personal_token_revoke(user=world.people["support"], prefix=revoked.prefix)

    api_key, world.secrets["service_key"] = make_key(service="gateway")
    world.key_prefix = api_key.prefix
    dead, world.secrets["revoked_key"] = make_key(service="gateway")
    service_key_revoke(api_key=dead, actor=Actor.command("tests"))
    old, world.secrets["rotated_key"] = make_key(service="gateway")
    service_key_rotate(api_key=old, grace=timedelta(0), actor=Actor.command("tests"))
    other, world.secrets["other_key"] = make_key(service="billing")
    world.other_prefix = other.prefix

    mine = dashboard_services.dashboard_create(name="Mine", owner=world.people["product"])
    world.dashboard_slug = mine.slug
    world.chart_id = dashboard_services.chart_add(dashboard=mine, title="c", query_string="event=search").pk
    someone = make_person("product", "product-two")
    theirs = dashboard_services.dashboard_create(name="Theirs", owner=someone)
    world.others_slug = theirs.slug
    world.others_chart_id = dashboard_services.chart_add(
        dashboard=theirs, title="t", query_string="event=search"
    ).pk
    world.annotation_id = Annotation.objects.create(
        text="deploy", timestamp=at, service="gateway", stage="prod"
    ).pk
    return world


def request_as(client, world: World, caller: str, method: str, path: str, *, data=None, content_type=None):
    """Make one request as `caller`: a session for people, `Authorization: Bearer` for tokens and keys."""
    client.logout()
    headers = {}
    if caller in PEOPLE:
        client.force_login(world.people[caller])
    elif caller != "anonymous":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world.secrets[caller]}"
    path = world.fill(path)
    if method in ("GET", "HEAD", "OPTIONS") or data is None:
        return client.generic(method, path, **headers)
    if content_type == "form":
        return client.generic(
            method, path, _urlencode(data), content_type="application/x-www-form-urlencoded", **headers
        )
    return client.generic(method, path, data, content_type=content_type or "application/json", **headers)


def _urlencode(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data)
