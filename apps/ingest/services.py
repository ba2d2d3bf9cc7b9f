"""Writes for ingestion: services and keys, and storing a batch of conformed events in one statement."""

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, JSONField, OuterRef, Q
from django.utils import timezone

from apps.accounts.actors import Actor, audit
from apps.accounts.models import AuditEntry
from apps.common.bulk import bulk_insert_json
from apps.common.secrets import SERVICE_KEY_KIND, new_secret, secret_hash

from .conform import FUTURE_TOLERANCE, MAX_SKEW_CORRECTION, SendContext, conform_event
from .models import EVENT_COLUMNS, SPAN_COLUMNS, ApiKey, RawEvent, RecentEventKey, Service
from .signals import events_stored

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    stored_ids: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    out_of_scope: bool = False

    def as_response(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


@transaction.atomic
def service_key_create(
    *, service_name: str, stage: str, actor: Actor, can_forward: bool = False, label: str = ""
) -> tuple[ApiKey, str]:
    """Create a key for a service (creating the service when new); return it and the secret, shown once.
    Audited as `actor`'s."""
    service, _ = Service.objects.get_or_create(name=service_name)
    api_key, raw_key = _new_key(service=service, stage=stage, can_forward=can_forward, label=label)
    audit(actor=actor, action=AuditEntry.KEY_CREATED, target=api_key.prefix)
    return api_key, raw_key


def _new_key(*, service: Service, stage: str, can_forward: bool, label: str) -> tuple[ApiKey, str]:
    prefix, raw_key = new_secret(SERVICE_KEY_KIND)
    api_key = ApiKey.objects.create(
        service=service,
        stage=stage,
        prefix=prefix,
        key_hash=secret_hash(raw_key),
        can_forward=can_forward,
        label=label,
    )
    return api_key, raw_key


class KeyNotUsable(ValueError):
    """The key is revoked or expired: it cannot be rotated (that would mint a working key from a dead one)."""


@transaction.atomic
def service_key_rotate(*, api_key: ApiKey, grace: timedelta, actor: Actor) -> tuple[ApiKey, str]:
    """Make a successor key with the same service, stage and scope; the old key expires after `grace`.
    Audited as `actor`'s (one entry: old -> new)."""
    if not api_key.is_usable(timezone.now()):
        raise KeyNotUsable(f"key {api_key.prefix} is revoked or expired; create a new key instead")
    successor, raw_key = _new_key(
        service=api_key.service,
        stage=api_key.stage,
        can_forward=api_key.can_forward,
        label=api_key.label or f"rotated from {api_key.prefix}",
    )
    expires = timezone.now() + grace
    if api_key.expires_at is None or api_key.expires_at > expires:
        api_key.expires_at = expires
        api_key.save(update_fields=["expires_at"])
    audit(actor=actor, action=AuditEntry.KEY_ROTATED, target=f"{api_key.prefix} -> {successor.prefix}")
    return successor, raw_key


@transaction.atomic
def service_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke a key; the next request that uses it gets 403. Audited as `actor`'s (once: revoking a revoked
    key changes nothing)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit(actor=actor, action=AuditEntry.KEY_REVOKED, target=api_key.prefix)
    return api_key


def events_ingest(
    *,
    items: Sequence[Any],
    api_key: ApiKey,
    received_at: datetime,
    sent_at: datetime | None = None,
    header_correlation_id: str = "",
    ingest_node: str = "",
    raws: Sequence[bytes] | None = None,
) -> IngestResult:
    """Conform and store a batch; valid items are stored even when others are refused.

    One multi-row INSERT ... ON CONFLICT DO NOTHING per batch: a re-sent event_id is a duplicate, never a
    second row. Processing is enqueued only after the commit, so a worker never sees an uncommitted id.
    `raws`: each item's JSON text, when a strict decoder read them (see `conform_event`).
    """
    context = SendContext(
        service=api_key.service.name,
        stage=api_key.stage,
        can_forward=api_key.can_forward,
        received_at=received_at,
        sent_at=sent_at,
        header_correlation_id=header_correlation_id,
    )
    result = IngestResult()
    rows: list[tuple[Any, ...]] = []
    # Each row's span columns, written only when the batch holds a span (their database defaults otherwise).
    span_values: list[tuple[str, str, float | None]] = []
    seen: set[tuple[str, Any]] = set()
    for index, item in enumerate(items):
        conformed = conform_event(item, context, raw=raws[index] if raws is not None else None)
        if not conformed.ok:
            result.rejected.append({"index": index, "errors": conformed.errors})
            result.out_of_scope = result.out_of_scope or conformed.out_of_scope
            continue
        event = conformed.event
        identity = (event["service"], event["event_id"])
        result.event_ids.append(str(event["event_id"]))
        if identity in seen:  # the same event twice in one batch: store it once
            result.duplicates += 1
            continue
        seen.add(identity)
        rows.append(
            (
                event["event_id"],
                event["service"],
                event["stage"],
                event["type"],
                event["event"],
                event["timestamp"],
                received_at,
                event["user_id"],
                event["correlation_id"],
                event["level"],
                event["message"],
                event["properties"],
                conformed.notes,
                ingest_node,
                api_key.pk,
            )
        )
        span_values.append((event["span_id"], event["parent_span_id"], event["duration_ms"]))
    if rows:
        columns = _INSERT_FIELDS
        if any(values != _NO_SPAN for values in span_values):
            columns = _SPAN_INSERT_FIELDS
            rows = [(*row, *values) for row, values in zip(rows, span_values, strict=True)]
        # The insert is atomic by itself: committed when it returns, unless a caller's transaction holds
        # it, whose commit on_commit then waits for. No BEGIN and COMMIT round trips around it.
        stored_ids = _insert_new_events(rows, columns)
        transaction.on_commit(lambda: _announce_stored(stored_ids))
        result.stored_ids = stored_ids
        result.accepted = len(stored_ids)
        result.duplicates += len(rows) - len(stored_ids)
    return result


# The columns of a stored event, in the order of the row tuples `events_ingest` builds.
_INSERT_FIELDS = (*EVENT_COLUMNS, "api_key")
# The same, then the span columns (a batch that holds a span).
_SPAN_INSERT_FIELDS = (*_INSERT_FIELDS, *SPAN_COLUMNS)
_NO_SPAN = ("", "", None)


def _insert_new_events(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> list[int]:
    return raw_events_store(rows=rows, columns=columns)


# How far apart the stored timestamps of one event's sends can be: each send is corrected for clock skew by
# at most MAX_SKEW_CORRECTION, so two of them differ by at most twice that.
RESEND_WINDOW = 2 * MAX_SKEW_CORRECTION
# Slack for the clocks of the web and beat machines and the database, which stamp and forget recent keys.
CLOCK_SLACK = timedelta(minutes=10)


def raw_events_store(*, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> list[int]:
    """Insert rows (tuples in `columns` order, distinct (service, event_id)) atomically, skipping events
    already stored; return the new ids.

    One table (SQLite): ON CONFLICT on the (service, event_id) key. Partitioned by day (PostgreSQL): that key
    cannot exist (a partitioned table's unique keys hold the partition column), and a re-send may carry
    another timestamp than its original, even another day's (skew correction from each send's `sent_at`).
    So, in one statement: the key goes into RecentEventKey (a concurrent insert of the same key waits for
    this one and skips it), and a key new there is still skipped when a committed row of the same event
    lies within RESEND_WINDOW of its timestamp (an original received before the recent keys' horizon).
    That look at the neighbouring days is needed only for an event old enough that its original's key may
    have been forgotten (see `_neighbour_check_age`): a batch of live traffic is spared it, and otherwise it
    names the days it may look at, so PostgreSQL plans and probes those partitions only, not every day kept.
    """
    if connection.vendor != "postgresql":
        return bulk_insert_json(RawEvent, columns, rows, conflict=("service", "event_id"), returning="id")
    if not rows:
        return []
    document = msgspec.json.encode(rows).decode()
    age = _neighbour_check_age()
    position = list(columns).index("timestamp")
    moments = [_as_datetime(row[position]) for row in rows]
    if age is not None and min(moments) > timezone.now() - age:
        sql, params = _partitioned_insert_sql(tuple(columns), look_around=False), [document]
    else:
        sql = _partitioned_insert_sql(tuple(columns), look_around=True)
        window = (min(moments) - RESEND_WINDOW, max(moments) + RESEND_WINDOW)
        params = [document, age, RESEND_WINDOW, RESEND_WINDOW, *window]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _neighbour_check_age() -> timedelta | None:
    """Return the age of timestamp from which an event must be looked for in the neighbouring days; None:
    every event (recent keys kept too briefly for the shortcut).

    Why younger events need no look: a key is forgotten INGEST_RECENT_KEY_HOURS after its event was stored;
    an event cannot be stored before its timestamp less FUTURE_TOLERANCE (conform clamps the future); and a
    re-send's timestamp is within RESEND_WINDOW of the original's. So an original whose key is gone has a
    timestamp older than now - INGEST_RECENT_KEY_HOURS + FUTURE_TOLERANCE, and any re-send of it one older
    than that + RESEND_WINDOW. A younger event's original, if stored, still has its key, which decides.
    """
    age = timedelta(hours=settings.INGEST_RECENT_KEY_HOURS) - RESEND_WINDOW - FUTURE_TOLERANCE - CLOCK_SLACK
    return age if age > timedelta(0) else None


@functools.cache
def _partitioned_insert_sql(columns: tuple[str, ...], *, look_around: bool) -> str:
    """Return the statement that stores new events once (see `raw_events_store`); PostgreSQL only. With
    `look_around`, an event new to the recent keys is also looked for in the neighbouring days."""
    fields = [RawEvent._meta.get_field(name) for name in columns]
    quote = connection.ops.quote_name
    names = [quote(field.column) for field in fields]
    values = ", ".join(
        f"r->{index}" if isinstance(field, JSONField) else f"(r->>{index})::{field.db_type(connection)}"
        for index, field in enumerate(fields)
    )
    table = quote(RawEvent._meta.db_table)
    keys = quote(RecentEventKey._meta.db_table)
    return (
        f"WITH incoming ({', '.join(names)}) AS ("
        f"  SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r),"
        f" fresh AS ("
        f'  INSERT INTO {keys} (service, event_id, "timestamp", stored_at)'
        f'  SELECT service, event_id, "timestamp", now() FROM incoming'
        f"  ON CONFLICT (service, event_id) DO NOTHING RETURNING service, event_id)"
        f" INSERT INTO {table} ({', '.join(names)})"
        f" SELECT {', '.join(f'i.{name}' for name in names)} FROM incoming i"
        f" JOIN fresh f ON f.service = i.service AND f.event_id = i.event_id"
        + (
            # NULL age: the comparison is NULL, and NOT EXISTS alone decides. The last two bounds are
            # constants (the batch's window) that let the planner leave the other days' partitions out.
            f' WHERE (i."timestamp" > now() - %s::interval'
            f"  OR NOT EXISTS (SELECT 1 FROM {table} o"
            f"  WHERE o.service = i.service AND o.event_id = i.event_id"
            f'  AND o."timestamp" >= i."timestamp" - %s AND o."timestamp" <= i."timestamp" + %s'
            f'  AND o."timestamp" >= %s AND o."timestamp" <= %s))'
            if look_around
            else ""
        )
        # Never met (the keys above decide), but an arbiter keeps a double from ever failing the batch.
        + ' ON CONFLICT (service, event_id, "timestamp") DO NOTHING'
        " RETURNING id"
    )


def recent_keys_release(*, keys: Q) -> int:
    """Forget the recent keys matching `keys` whose events are no longer stored (retention or a purge
    deleted them), so that a replay stores those events again; return how many."""
    # Where the insert looks for an original (see raw_events_store): the range also lets a partitioned table
    # probe those days' partitions only.
    stored = RawEvent.objects.filter(
        service=OuterRef("service"),
        event_id=OuterRef("event_id"),
        timestamp__gte=OuterRef("timestamp") - RESEND_WINDOW,
        timestamp__lte=OuterRef("timestamp") + RESEND_WINDOW,
    )
    return RecentEventKey.objects.filter(keys).exclude(Exists(stored)).delete()[0]


def recent_keys_forget(*, before: datetime) -> int:
    """Remove the recent idempotency keys stored before `before` (their events are committed long since,
    and found by the insert's look at neighbouring days); return how many."""
    return RecentEventKey.objects.filter(stored_at__lt=before).delete()[0]


def _announce_stored(stored_ids: list[int]) -> None:
    """Tell the pipeline (a receiver of `events_stored`) about committed events; a failure loses nothing."""
    try:
        events_stored.send(sender=RawEvent, event_ids=stored_ids)
    except Exception:  # the broker is down or refused: the rows are committed; the sweeper enqueues them
        logger.warning(
            "could not hand %d new events to the pipeline; the sweeper will pick them up",
            len(stored_ids),
            exc_info=True,
        )


def api_key_touch(*, api_key: ApiKey, now: datetime, every_seconds: int = 60) -> None:
    """Record that a key was used, at most once a minute per key and process (not a write per request)."""
    last = _last_touched.get(api_key.pk)
    if last is not None and (now - last).total_seconds() < every_seconds:
        return
    _last_touched[api_key.pk] = now
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


_last_touched: dict[int, datetime] = {}
