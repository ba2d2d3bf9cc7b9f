"""Trace search on Elasticsearch: daily indices behind an index template and an alias.

Indices are `<prefix>-YYYY.MM.DD` by event time, all in the alias `<prefix>` (settings
ELASTICSEARCH_INDEX_PREFIX, default `obs-events`). `properties` is `flattened` and the mapping is strict,
so user-chosen keys never grow the mapping.
"""

import functools
import logging
import re
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from elastic_transport import TransportError
from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_exceptions
from elasticsearch_dsl import (
    DateNanos,
    Document,
    Double,
    Flattened,
    Index,
    Keyword,
    Long,
    MetaField,
    MultiSearch,
    Q,
    Search,
    Text,
    connections,
)

from apps.common.errors import BackendUnavailable
from apps.common.redact import redact_text
from apps.ingest.conform import user_id_spellings

from .base import (
    MAX_SEQ,
    BackendHealth,
    IndexOutcome,
    RequestPage,
    RequestSummary,
    TraceBackend,
    TraceEvent,
    TraceQuery,
    TrailCursor,
    TrailPage,
    unmatchable,
    worst_level,
)

logger = logging.getLogger(__name__)

# Every search: a missing daily index is no error, and a shard that cannot answer fails the search rather
# than leaving holes in a trail.
SEARCH_PARAMS = {"ignore_unavailable": True, "allow_no_indices": True, "allow_partial_search_results": False}


def _unavailable(exc: Exception) -> BackendUnavailable:
    """Return the error to raise when the cluster cannot be reached: where, why, never the credentials."""
    return BackendUnavailable(redact_text(f"{settings.ELASTICSEARCH_URL}: {exc}"))


def _encoding_with_orjson(serializer: Any) -> Any:
    """Return `serializer` with its encoding done by orjson, several times faster than the json module
    (bulk bodies are most of what the pipeline sends); what orjson refuses (an integer beyond 64 bits in
    a property) is encoded as before. Decoding is left alone: orjson reads such integers as floats."""

    class OrjsonEncoding(type(serializer)):
        def json_dumps(self, data: Any) -> bytes:
            try:
                return orjson.dumps(data, default=self.default)
            except orjson.JSONEncodeError:
                return super().json_dumps(data)

    return OrjsonEncoding()


def es_hosts() -> list[str]:
    """Return the node URLs of ELASTICSEARCH_URL (one, or several comma-separated)."""
    return [url.strip() for url in settings.ELASTICSEARCH_URL.split(",") if url.strip()]


def es_client() -> Elasticsearch:
    """Return the process-wide Elasticsearch client for the configured URL (created on first use)."""
    # Keyed by URL so that a changed setting (tests, a re-pointed cluster) never reuses a stale client.
    alias = f"skywatch:{settings.ELASTICSEARCH_URL}"
    try:
        return connections.get_connection(alias)
    except KeyError:
        pass
    options: dict = {
        "request_timeout": settings.ELASTICSEARCH_TIMEOUT,
        "retry_on_timeout": True,
        "max_retries": 2,
    }
    if settings.ELASTICSEARCH_API_KEY:
        options["api_key"] = settings.ELASTICSEARCH_API_KEY
    if settings.ELASTICSEARCH_CA_CERTS:
        options["ca_certs"] = settings.ELASTICSEARCH_CA_CERTS
    # Several hosts: requests go round the nodes, and one that fails to connect is sent again to another.
    client = connections.create_connection(alias=alias, hosts=es_hosts(), **options)
    # elasticsearch-dsl chooses the serializers itself, so their encoding is swapped on the transport.
    serializers = client.transport.serializers.serializers
    for mimetype, serializer in list(serializers.items()):
        if "json" in mimetype:
            serializers[mimetype] = _encoding_with_orjson(serializer)
    return client


def es_read_client() -> Elasticsearch:
    """Return the client for a read someone waits for (a page, an API call): a search that timed out is
    not sent again, so a silent cluster costs one ELASTICSEARCH_TIMEOUT, not three (past the proxy's own
    wait, whose 504 would say nothing). A node that refuses the connection still passes the request on to
    the next node of a cluster: that costs no time."""
    client = es_client()
    # options() builds a new client each call (0.1-0.4 ms, OpenTelemetry set-up included): made once per
    # process-wide client, it shares that client's connections.
    cached = _read_clients.get(id(client))
    if cached is None or cached[0] is not client:
        cached = (client, client.options(retry_on_timeout=False))
        _read_clients[id(client)] = cached
    return cached[1]


_read_clients: dict[int, tuple[Elasticsearch, Elasticsearch]] = {}


class EventDocument(Document):
    """One event or log line as support staff search it."""

    event_id = Keyword()
    type = Keyword()
    event = Keyword()
    service = Keyword()
    stage = Keyword()
    level = Keyword()
    user_id = Keyword()
    correlation_id = Keyword()
    message = Text(fields={"raw": Keyword(ignore_above=1024)})
    # Nanosecond dates keep the microseconds services send; `seq` (the raw row id) breaks remaining ties
    # the way the database backend does, so both backends order a trail identically.
    timestamp = DateNanos()
    received_at = DateNanos()
    seq = Long()
    properties = Flattened(ignore_above=1024, depth_limit=20)
    notes = Keyword(ignore_above=512)
    ingest_node = Keyword()
    # Spans only (absent from other documents): hex ids, and the duration to sort or filter by.
    span_id = Keyword()
    parent_span_id = Keyword()
    duration_ms = Double()

    class Meta:
        dynamic = MetaField("strict")


def alias_name() -> str:
    return settings.ELASTICSEARCH_INDEX_PREFIX


def index_name_for(event: Any, *, prefix: str | None = None) -> str:
    """Return the daily index an event belongs to (by its own time, so re-indexing lands in one place).
    `prefix` is alias_name(), when the caller read it once for many events."""
    return _daily_index(prefix or alias_name(), event.timestamp.date())


@functools.lru_cache(maxsize=64)
def _daily_index(prefix: str, day: date) -> str:
    # Formatted once per day, not per document: a bulk's documents fall on a few days.
    return f"{prefix}-{day:%Y.%m.%d}"


def document_id(event: Any, *, event_id: str | None = None) -> str:
    """Return an event's document id; `event_id` is its event_id as text, when the caller has it."""
    # event_id is unique per service, not globally: qualify it so no service can overwrite another's.
    return f"{event.service}:{event_id or event.event_id}"


def index_template_ensure() -> None:
    """Create or update the index template that gives every daily index its mapping and the alias, and
    add fields the mapping gained to the daily indices that exist (the mapping is strict: a document with
    a field its index does not map is refused)."""
    index = Index(f"{alias_name()}-*")
    index.document(EventDocument)
    index.settings(
        number_of_shards=settings.ELASTICSEARCH_SHARDS,
        number_of_replicas=settings.ELASTICSEARCH_REPLICAS,
        refresh_interval="1s",
    )
    index.aliases(**{alias_name(): {}})
    client = es_client()
    index.as_composable_template(alias_name(), priority=100).save(using=client)
    # The replica count is the one index setting that changes in place: the daily indices that exist take
    # a new one too (their shard count stays; only indices created from now on get a new one).
    client.indices.put_settings(
        index=f"{alias_name()}-*",
        settings={"index": {"number_of_replicas": settings.ELASTICSEARCH_REPLICAS}},
        allow_no_indices=True,
        expand_wildcards="open",
    )
    # Adding a field is the one change a mapping takes in place; fields already mapped are left as they are.
    client.indices.put_mapping(
        index=f"{alias_name()}-*",
        properties=EventDocument._doc_type.mapping.to_dict()["properties"],
        allow_no_indices=True,
        expand_wildcards="open",
    )


def document_for(event: Any, *, prefix: str | None = None) -> dict[str, Any]:
    """Return an event's bulk action. `prefix` is alias_name(), when the caller read it once for many."""
    event_id = str(event.event_id)  # once: the pipeline reads it as text, a model instance holds a UUID
    return {
        "_index": index_name_for(event, prefix=prefix),
        "_id": document_id(event, event_id=event_id),
        "_source": {
            "event_id": event_id,
            "type": event.type,
            "event": event.event,
            "service": event.service,
            "stage": event.stage,
            "level": event.level or None,
            "user_id": event.user_id or None,
            "correlation_id": event.correlation_id or None,
            "message": event.message,
            # Datetimes as they are: orjson writes the same ISO 8601 text as isoformat(), several times faster
            "timestamp": event.timestamp,
            "received_at": event.received_at,
            "properties": event.properties or {},
            "notes": event.notes or [],
            "ingest_node": event.ingest_node,
            "seq": event.pk,
            **_span_fields(event),
        },
    }


def _span_fields(event: Any) -> dict[str, Any]:
    """Return a span's own fields for its document; other events have none (they stay small)."""
    if event.type != "span":
        return {}
    fields = {"span_id": event.span_id or None, "parent_span_id": event.parent_span_id or None}
    if event.duration_ms is not None:
        fields["duration_ms"] = event.duration_ms
    return fields


def _bulk_lines(document: dict[str, Any], dumps: Any) -> bytes:
    """Return a document_for() action as the bulk body's two lines, encoded by the client's serializer."""
    action = {"index": {"_index": document["_index"], "_id": document["_id"]}}
    return b"%b\n%b\n" % (dumps(action), dumps(document["_source"]))


# Documents per bulk request (a pipeline chunk's bulks hold this many already), and how a bulk retries what
# Elasticsearch turned away with 429 (its write queue full): as elasticsearch.helpers would, each retry of
# those documents only, after twice the pause before.
BULK_DOCUMENTS = 500
BULK_RETRIES = 5
BULK_BACKOFF_SECONDS = (0.5, 10.0)


def _bulk_send(client: Elasticsearch, lines: list[tuple[int, bytes]], outcome: IndexOutcome) -> None:
    """Send (pk, bulk lines) pairs in one bulk request and add what became of each to `outcome`.

    The bulk request itself, not `helpers.streaming_bulk`: the helper's work per action (expanding,
    serializing through its chunker, pairing answers) cost as much CPU as encoding the documents, and
    the pipeline pays it for every event. Its semantics are kept: 429s retried with backoff, other
    refusals per document, a failed request raised.
    """
    initial, ceiling = BULK_BACKOFF_SECONDS
    for attempt in range(BULK_RETRIES + 1):
        if attempt:
            time.sleep(min(ceiling, initial * 2 ** (attempt - 1)))
        last = attempt == BULK_RETRIES
        try:
            answer = client.bulk(body=b"".join(line for _, line in lines), filter_path=_BULK_ITEM_FIELDS)
        except es_exceptions.ApiError as exc:
            if exc.status_code == 429 and not last:
                continue
            raise
        crowded = []
        # The answer's items come in the order of the request's documents.
        for (pk, line), item in zip(lines, answer.body["items"], strict=True):
            action = item.get("index", {})
            status = action.get("status", 500)
            if 200 <= status < 300:
                outcome.indexed.append(pk)
            elif status == 429 and not last:
                crowded.append((pk, line))
            elif status == 429 or status >= 500:
                outcome.retry_later[pk] = _reason(action)
            else:
                outcome.rejected[pk] = _reason(action)
        if not crowded:
            return
        lines = crowded


# Of each bulk item: its document, status, and the error when refused (what _reason reads).
_BULK_ITEM_FIELDS = ["items.*._id", "items.*.status", "items.*.error"]


class ElasticsearchTraceBackend(TraceBackend):
    name = "elasticsearch"
    uses_database = False

    def __init__(self) -> None:
        self._template_ready_for: str | None = None

    def ping(self) -> BackendHealth:
        try:
            # One short request: a health probe must answer quickly even when the cluster hangs. Only a
            # node that refuses the connection is passed over for the next one (refusals cost no time); a
            # timeout or an error answer is the answer.
            client = es_client().options(
                request_timeout=2, max_retries=len(es_hosts()) - 1, retry_on_timeout=False, retry_on_status=()
            )
            # The health of the portal's own indices: another application's red index on a shared cluster
            # does not stop the portal from serving (no index yet: green). Health comes from the elected
            # master; while the cluster elects one (seconds) the node answers 503 after master_timeout.
            health = client.cluster.health(
                index=f"{alias_name()}-*",
                master_timeout="1s",
                filter_path=["status", "number_of_nodes", "unassigned_shards", "unassigned_primary_shards"],
            ).body
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc
        status, nodes = health.get("status", "unknown"), health.get("number_of_nodes", 0)
        unassigned, unassigned_primaries = (
            health.get("unassigned_shards", 0),
            health.get("unassigned_primary_shards", 0),
        )
        if status == "green":
            return BackendHealth(detail=f"{self.name}: green, {nodes} nodes")
        if status == "yellow":
            # Every primary is assigned: searches and writes all succeed, with fewer copies than configured.
            return BackendHealth(
                detail=f"{self.name}: yellow, {unassigned} unassigned replica shards, {nodes} nodes",
                degraded=True,
            )
        # Red: a primary shard is unassigned, so some documents can be neither found nor written.
        raise BackendUnavailable(
            redact_text(
                f"{settings.ELASTICSEARCH_URL}: cluster health {status}, {unassigned_primaries} unassigned "
                f"primary shards ({unassigned} unassigned in all), {nodes} nodes"
            )
        )

    def index_events(self, events: Sequence[Any]) -> IndexOutcome:
        outcome = IndexOutcome()
        if not events:
            return outcome
        prefix = alias_name()
        try:
            self._ensure_template()
            client = es_client()
            dumps = client.transport.serializers.get_serializer("application/json").dumps
            for start in range(0, len(events), BULK_DOCUMENTS):
                lines = [
                    (ev.pk, _bulk_lines(document_for(ev, prefix=prefix), dumps))
                    for ev in events[start : start + BULK_DOCUMENTS]
                ]
                _bulk_send(client, lines, outcome)
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc
        return outcome

    def trail_page(self, correlation_id: str, *, limit: int, after: TrailCursor | None = None) -> TrailPage:
        if unmatchable(correlation_id) or (after is not None and after.timestamp >= NANOS_LATEST):
            return TrailPage([], next=None)
        # The hot read of the trace viewer: one request through the client, only the sources and sort values
        # coming back (filter_path), no DSL objects built around the answer. A shard that cannot be read (a
        # red cluster) fails the search, here and in every search below: a partial answer is a trail with
        # holes. The page goes on from a cursor with search_after on the same three sort values.
        extra: dict[str, Any] = {}
        if after is not None:
            # A received time past what date_nanos holds (only a made-up cursor has one) sorts as the last.
            received = min(_nanos(after.received_at), MAX_SEQ)
            extra["search_after"] = [_nanos(after.timestamp), received, after.seq]
        answer = self._read(
            lambda es: es.search(
                index=alias_name(),
                query={"bool": {"filter": [{"term": {"correlation_id": correlation_id}}]}},
                sort=_TRAIL_SORT,
                size=limit + 1,  # one more than the page says whether more follow
                track_total_hits=False,
                ignore_unavailable=True,
                allow_no_indices=True,
                allow_partial_search_results=False,
                filter_path=["hits.hits._source", "hits.hits.sort"],
                **extra,
            )
        )
        hits = answer.body.get("hits", {}).get("hits", [])  # no hits: an empty body
        shown = hits[:limit]
        cursor = None
        if len(hits) > limit and shown:
            timestamp, received_at, seq = shown[-1]["sort"]
            cursor = TrailCursor(_from_nanos(timestamp), _from_nanos(received_at), min(seq, MAX_SEQ))
        return TrailPage([_trace_event_from(hit["_source"]) for hit in shown], next=cursor)

    def correlation_exists(self, correlation_id: str) -> bool:
        if not correlation_id or unmatchable(correlation_id):
            return False
        return self._any_document({"term": {"correlation_id": correlation_id}})

    def user_exists(self, user_id: str) -> bool:
        if not user_id or unmatchable(user_id):
            return False
        return self._any_document({"terms": {"user_id": user_id_spellings(user_id)}})

    def search_requests(self, query: TraceQuery, *, page: int, per_page: int) -> RequestPage:
        if unmatchable(*query.strings()):
            return RequestPage([], total=0, page=page, per_page=per_page)
        # One query finds the page of requests (collapsed on the correlation ID, newest first) and counts
        # them; a second summarises those requests whole, not only their matching events.
        search = self._requests_newest_first(query).extra(from_=(page - 1) * per_page, size=per_page)
        search.aggs.metric("requests", "cardinality", field="correlation_id", precision_threshold=40000)
        response = self._execute(search)
        # Read the raw _source: the DSL merges the collapse `fields` (lists) over it.
        cids = [hit["_source"]["correlation_id"] for hit in response.to_dict()["hits"]["hits"]]
        # Before the first event is indexed (or after retention dropped every index) no index answers,
        # and the response has no aggregations at all.
        counted = getattr(response.aggregations, "requests", None)
        total = int(counted.value) if counted is not None else 0
        return RequestPage(self.summarise_requests(cids), total=total, page=page, per_page=per_page)

    def newest_requests_of_users(
        self, user_ids: Sequence[str], *, start: datetime | None, end: datetime | None, limit: int
    ) -> dict[str, list[str]]:
        # Each user's search as search_requests sends it, all in one _msearch.
        searches = MultiSearch(using=es_read_client(), index=alias_name())
        for user_id in user_ids:
            query = TraceQuery(user_id=user_id, start=start, end=end)
            searches = searches.add(
                self._requests_newest_first(query).extra(size=limit).params(**SEARCH_PARAMS)
            )
        try:
            responses = searches.execute()
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc
        return {
            user_id: [hit["_source"]["correlation_id"] for hit in response.to_dict()["hits"]["hits"]]
            for user_id, response in zip(user_ids, responses, strict=True)
        }

    def surrounding(
        self, *, service: str, start: datetime, end: datetime, limit: int, newest_first: bool = False
    ) -> list[TraceEvent]:
        if unmatchable(service):
            return []
        bounds = _nanos_bounds(start, end, upper="lte")
        if bounds is None:
            return []
        search = self._search().filter("term", service=service)
        if bounds:
            search = search.filter("range", timestamp=bounds)
        order = "desc" if newest_first else "asc"
        search = search.sort(*({name: order} for name in ("timestamp", "received_at", "seq")))
        search = search.extra(size=limit, track_total_hits=False)
        return [_trace_event(hit) for hit in self._execute(search).hits]

    def drop_before(self, cutoff: datetime) -> list[str]:
        names = self._call(
            lambda es: list(es.indices.get(index=f"{alias_name()}-*", expand_wildcards="open,closed"))
        )
        expired = [name for name in names if (day := _index_day(name)) is not None and day < cutoff.date()]
        if expired:
            self._call(lambda es: es.indices.delete(index=",".join(expired)))
        return sorted(expired)

    def delete_user(self, user_id: str, *, properties: Sequence[str] = ()) -> int:
        # This distribution has no _delete_by_query: page through the user's documents and bulk-delete them.
        places = [Q("term", user_id=user_id)] + [
            Q("term", **{f"properties.{name}": user_id}) for name in properties
        ]
        deleted = 0
        while True:
            # A search sees what the last refresh made visible: a document indexed within the last second
            # (refresh_interval) would survive the purge. Refreshed each round, so a search also sees the
            # previous round's deletes.
            self._call(
                lambda es: es.indices.refresh(
                    index=alias_name(), ignore_unavailable=True, allow_no_indices=True
                )
            )
            search = self._search().filter("bool", should=places, minimum_should_match=1)
            search = search.extra(size=1000, _source=False)
            hits = self._execute(search).to_dict()["hits"]["hits"]
            if not hits:
                return deleted
            actions = [{"_op_type": "delete", "_index": h["_index"], "_id": h["_id"]} for h in hits]
            removed, errors = self._call(lambda es, a=actions: helpers.bulk(es, a, raise_on_error=False))
            deleted += removed
            # Gone already (404) is what a purge wants; anything else (a write block, a read-only index)
            # would find the same documents again in the next round, for ever.
            failed = [item["delete"] for item in errors if item["delete"].get("status") != 404]
            if failed:
                raise BackendUnavailable(
                    redact_text(
                        f"{settings.ELASTICSEARCH_URL}: {len(failed)} of {len(actions)} documents of the "
                        f"user could not be deleted ({_reason(failed[0])}); {deleted} were"
                    )
                )

    def missing_days(self, days: Sequence[date]) -> list[date]:
        names = {_daily_index(alias_name(), day): day for day in days}
        # One request for all of them (HEAD answers 200 only when every one exists), then one per day.
        if not names or self._index_exists(",".join(names)):
            return []
        return sorted(day for name, day in names.items() if not self._index_exists(name))

    def _index_exists(self, names: str) -> bool:
        return bool(self._read(lambda es: es.indices.exists(index=names, allow_no_indices=False)))

    def _any_document(self, condition: dict[str, Any]) -> bool:
        # Each shard stops at its first match and nothing but the count comes back.
        answer = self._read(
            lambda es: es.search(
                index=alias_name(),
                query={"bool": {"filter": [condition]}},
                size=0,
                terminate_after=1,
                track_total_hits=1,
                ignore_unavailable=True,
                allow_no_indices=True,
                allow_partial_search_results=False,
                filter_path=["hits.total.value"],
            )
        )
        return answer.body.get("hits", {}).get("total", {}).get("value", 0) > 0

    def _call(self, operation):
        try:
            return operation(es_client())
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc

    def _read(self, operation):
        """Run a read someone waits for (see es_read_client)."""
        try:
            return operation(es_read_client())
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc

    def summarise_requests(self, cids: list[str]) -> list[RequestSummary]:
        if not cids:
            return []
        search = self._search().filter("terms", correlation_id=cids).extra(size=0, track_total_hits=False)
        per_request = search.aggs.bucket("cid", "terms", field="correlation_id", size=len(cids))
        # The earliest and latest event's sort value, not min and max: those are doubles of milliseconds,
        # which lose the microseconds the database keeps; a date_nanos sort value is exact nanoseconds (in
        # nanoseconds too from an index that maps `timestamp` as a millisecond date).
        for name, order in (("first", "asc"), ("last", "desc")):
            by_time = {"timestamp": {"order": order, "numeric_type": "date_nanos"}}
            per_request.metric(name, "top_hits", size=1, sort=[by_time], _source=False)
        per_request.bucket("services", "terms", field="service", size=100, order={"_key": "asc"})
        per_request.bucket("levels", "terms", field="level", size=10)
        answer = self._execute(search).to_dict()
        buckets = {b["key"]: b for b in answer.get("aggregations", {}).get("cid", {}).get("buckets", [])}
        summaries = []
        for cid in cids:
            bucket = buckets.get(cid)
            if bucket is None:  # its events were purged or dropped between the two queries
                continue
            summaries.append(
                RequestSummary(
                    correlation_id=cid,
                    first=_from_nanos(bucket["first"]["hits"]["hits"][0]["sort"][0]),
                    last=_from_nanos(bucket["last"]["hits"]["hits"][0]["sort"][0]),
                    services=[s["key"] for s in bucket["services"]["buckets"]],
                    count=bucket["doc_count"],
                    worst_level=worst_level([lv["key"] for lv in bucket["levels"]["buckets"]]),
                )
            )
        return summaries

    def _search(self) -> Search:
        return Search(using=es_read_client(), index=alias_name())

    def _requests_newest_first(self, query: TraceQuery) -> Search:
        """The requests with an event matching `query`, one hit each (collapsed on the correlation ID)."""
        search = _filtered(self._search(), query).filter("exists", field="correlation_id")
        # Ties on the newest time go by correlation ID, as on the database: pages neither skip nor repeat one.
        return search.sort({"timestamp": "desc"}, {"correlation_id": "asc"}).extra(
            collapse={"field": "correlation_id"}, track_total_hits=False, _source=["correlation_id"]
        )

    def _execute(self, search: Search):
        try:
            return search.params(**SEARCH_PARAMS).execute()
        except (TransportError, es_exceptions.ApiError) as exc:
            raise _unavailable(exc) from exc

    def _ensure_template(self) -> None:
        if self._template_ready_for != alias_name():
            index_template_ensure()
            self._template_ready_for = alias_name()


def _reason(action: dict) -> str:
    error = action.get("error") or {}
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"[:1000]
    return str(error)[:1000]


# What a date_nanos field holds.
NANOS_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
NANOS_LATEST = datetime(2262, 4, 11, tzinfo=UTC)


def _nanos_bounds(start: datetime | None, end: datetime | None, *, upper: str) -> dict[str, str] | None:
    """Return the range bounds on `timestamp` for [start, end (`upper`: "lt" or "lte")], or None when the
    range can hold nothing. `timestamp` is date_nanos, which refuses bounds outside what it can store: a
    bound beyond them either excludes everything or nothing."""
    if (start and start >= NANOS_LATEST) or (end and end < NANOS_EARLIEST):
        return None
    bounds = {}
    if start and start > NANOS_EARLIEST:
        bounds["gte"] = start.isoformat()
    if end and end < NANOS_LATEST:
        bounds[upper] = end.isoformat()
    return bounds


def _filtered(search: Search, query: TraceQuery) -> Search:
    if query.start or query.end:
        bounds = _nanos_bounds(query.start, query.end, upper="lt")
        if bounds is None:
            return search.filter("match_none")
        if bounds:
            search = search.filter("range", timestamp=bounds)
    for name in ("correlation_id", "service", "level", "event"):
        value = getattr(query, name)
        if value:
            search = search.filter("term", **{name: value})
    if query.user_id:
        search = search.filter("terms", user_id=user_id_spellings(query.user_id))
    if query.text.strip():
        # A match query: every word must be in the message, as on the database. simple_query_string's
        # operators turned a pasted "-1" into "messages without 1", "a | b" into either word, and "*" into
        # every message (even with its flags off); raw query_string would also let users pick fields.
        search = search.query(Q("match", message={"query": query.text, "operator": "and"}))
    return search


def _trace_event(hit) -> TraceEvent:
    return _trace_event_from(hit.to_dict())


def _trace_event_from(source: dict[str, Any]) -> TraceEvent:
    return TraceEvent(
        event_id=source["event_id"],
        type=source.get("type", "metric"),
        event=source.get("event", ""),
        timestamp=_parse_time(source["timestamp"]),
        received_at=_parse_time(source["received_at"]),
        service=source.get("service", ""),
        stage=source.get("stage", ""),
        user_id=source.get("user_id") or "",
        correlation_id=source.get("correlation_id") or "",
        level=source.get("level") or "",
        message=source.get("message", ""),
        properties=source.get("properties") or {},
        notes=list(source.get("notes") or []),
        span_id=source.get("span_id") or "",
        parent_span_id=source.get("parent_span_id") or "",
        duration_ms=source.get("duration_ms"),
    )


# A trail's order, as the database's (time, received time, row id). Both times sort as nanoseconds whatever
# an index maps them as, so the sort values (and a cursor's search_after) mean the same in every index.
_TRAIL_SORT = [
    {"timestamp": {"order": "asc", "numeric_type": "date_nanos"}},
    {"received_at": {"order": "asc", "numeric_type": "date_nanos"}},
    {"seq": {"order": "asc"}},
]


def _nanos(moment: datetime) -> int:
    """Return a moment as nanoseconds since the epoch (a date_nanos sort value)."""
    return (moment - NANOS_EARLIEST) // timedelta(microseconds=1) * 1000


def _from_nanos(nanos: int) -> datetime:
    """Return a date_nanos sort value (nanoseconds since the epoch) as a datetime, to the microsecond."""
    return NANOS_EARLIEST + timedelta(microseconds=nanos // 1000)


def _index_day(name: str):
    """Return the day of a daily index name `<prefix>-YYYY.MM.DD`, or None for any other name."""
    suffix = name.removeprefix(f"{alias_name()}-")
    try:
        return datetime.strptime(suffix, "%Y.%m.%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_time(value) -> datetime:
    # Raw hits keep dates as text; nanosecond dates carry more fraction digits than Python reads.
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(_FRACTION.sub(r"\1", value))
