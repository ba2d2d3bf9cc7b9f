"""Writes for ingestion: services and keys, and storing a batch of conformed events in one statement."""

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.actors import Actor, audit
from apps.accounts.models import AuditEntry
from apps.common.bulk import bulk_insert_json, json_insert_sql, json_rows
from apps.common.secrets import SERVICE_KEY_KIND, secret_hash, secret_store

from .conform import SendContext, conform_event
from .models import (
    CLIENT_TIME_COLUMN,
    EVENT_COLUMNS,
    SPAN_COLUMNS,
    AggregationBacklog,
    ApiKey,
    ClientTimeBounds,
    RawEvent,
    RawEventBacklog,
    Service,
    client_time_bounds,
)
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
    return secret_store(
        SERVICE_KEY_KIND,
        lambda prefix, raw_key: ApiKey.objects.create(
            service=service,
            stage=stage,
            prefix=prefix,
            key_hash=secret_hash(raw_key),
            can_forward=can_forward,
            label=label,
        ),
        taken=lambda prefix: ApiKey.objects.filter(prefix=prefix).exists(),
    )


class KeyNotUsable(ValueError):
    """The key is revoked or expired: it cannot be rotated (that would mint a working key from a dead one)."""


@transaction.atomic
@transaction.atomic
def service_key_rotate(*, api_key: ApiKey, grace: timedelta, actor: Actor) -> tuple[ApiKey, str]:
    """Make a successor key with the same service, stage and scope; the old key expires after `grace`.
    Audited as `actor`'s (one entry: old -> new).

    A key rotated already is rotated again only to end it sooner: else (a double submit, say) the new
    successor would be a working key whose secret nobody saw. The key is locked, so that a second
    rotation waits for the first and then sees it.
    """
    api_key = ApiKey.objects.select_for_update(of=("self",)).select_related("service").get(pk=api_key.pk)
    if not api_key.is_usable(timezone.now()):
        raise KeyNotUsable(f"key {api_key.prefix} is revoked or expired; create a new key instead")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now() + grace:
        raise KeyNotUsable(
            f"key {api_key.prefix} was rotated already; it stops working at "
            f"{api_key.expires_at:%Y-%m-%d %H:%M} UTC"
        )
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
    key changes nothing). The key is locked and read again, so that of two revocations at once the second
    waits for the first and then sees it."""
    locked = ApiKey.objects.select_for_update(of=("self",)).get(pk=api_key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit(actor=actor, action=AuditEntry.KEY_REVOKED, target=locked.prefix)
    api_key.revoked_at = locked.revoked_at
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
        result.event_ids.append(event["event_id"])
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
                event["client_timestamp"],
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
        stored_ids = raw_events_store(rows=rows, columns=columns)
        # Of every row sent, so of the stored ones too (wider at worst: still right as a bound).
        client_times = client_time_bounds(row[_CLIENT_TIME] for row in rows)
        transaction.on_commit(lambda: _announce_stored(stored_ids, client_times))
        result.stored_ids = stored_ids
        result.accepted = len(stored_ids)
        result.duplicates += len(rows) - len(stored_ids)
    return result


# The columns of a stored event, in the order of the row tuples `events_ingest` builds.
_INSERT_FIELDS = (*EVENT_COLUMNS, CLIENT_TIME_COLUMN, "api_key")
# The same, then the span columns (a batch that holds a span).
_SPAN_INSERT_FIELDS = (*_INSERT_FIELDS, *SPAN_COLUMNS)
_CLIENT_TIME = _INSERT_FIELDS.index(CLIENT_TIME_COLUMN)
_NO_SPAN = ("", "", None)


def raw_events_store(
    *, rows: Sequence[Sequence[Any]], columns: Sequence[str], pending: bool = True
) -> list[int]:
    """Insert rows (tuples in `columns` order, distinct (service, event_id)) atomically, skipping events
    already stored, and put the new ones in the aggregation backlog unless not `pending` (replay's events
    counted before they were archived); return the new ids.

    One table (SQLite): ON CONFLICT on the (service, event_id) key. Partitioned by client day (PostgreSQL):
    ON CONFLICT DO NOTHING without a target, which uses the unique (service, event_id) index of the
    partition each row goes to, the one its original went to (apps/ingest/partitions.py); the backlog rows
    are written by the same statement, from what the INSERT returned.
    """
    if not rows:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_store_sql(tuple(columns), pending), [json_rows(rows)])
            return [r[0] for r in cursor.fetchall()]
    with transaction.atomic():
        stored_ids = bulk_insert_json(
            RawEvent, columns, rows, conflict=("service", "event_id"), returning="id"
        )
        if pending:
            backlog_add(AggregationBacklog, RawEvent.objects.filter(pk__in=stored_ids))
    return stored_ids


def backlog_add(backlog: type[RawEventBacklog], events: QuerySet[RawEvent]) -> int:
    """Write a row in `backlog` for each of these events not there yet (one INSERT … SELECT on PostgreSQL);
    return how many were written."""
    rows = events.values_list("pk", CLIENT_TIME_COLUMN, "received_at")
    if connection.vendor == "postgresql":
        try:
            sql, params = rows.query.sql_with_params()
        except EmptyResultSet:  # asked for none (an empty list of ids)
            return 0
        with connection.cursor() as cursor:
            cursor.execute(f"{backlog.insert_head()} {sql} ON CONFLICT DO NOTHING", params)
            return cursor.rowcount
    new = [backlog(raw_id=pk, client_timestamp=moment, received_at=at) for pk, moment, at in rows]
    # SQLite's bulk insert with ignore_conflicts cannot tell what it skipped: count first.
    there = set(
        backlog.objects.filter(raw_id__in=[row.raw_id for row in new]).values_list("raw_id", flat=True)
    )
    backlog.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    return len(new) - len(there)


# What the stored rows give the aggregation backlog, in its columns' order.
_BACKLOG_COLUMNS = ("id", CLIENT_TIME_COLUMN, "received_at")


@functools.cache
def _store_sql(columns: tuple[str, ...], pending: bool) -> str:
    insert = json_insert_sql(RawEvent, columns, (), None, _BACKLOG_COLUMNS if pending else "id")
    if not pending:
        return insert
    return (
        f"WITH stored AS ({insert}), backlog AS ({AggregationBacklog.insert_head()} SELECT * FROM stored)"
        " SELECT id FROM stored"
    )


def _announce_stored(stored_ids: list[int], client_times: ClientTimeBounds) -> None:
    """Tell the pipeline (a receiver of `events_stored`) about committed events; a failure loses nothing."""
    try:
        events_stored.send(sender=RawEvent, event_ids=stored_ids, client_times=client_times)
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
