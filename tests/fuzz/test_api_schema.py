"""Schemathesis against /api/schema/: the ingestion and read APIs get generated valid and invalid requests;
no request may earn a 5xx or an answer the schema does not describe, and bad input never stores half a batch.

FUZZ_MAX_EXAMPLES sets the generated cases per operation (positive and negative drawn together): a few
dozen inside `make test`, 1,000 in `make fuzz`. FUZZ_MIN_CASES makes the run fail when an operation got
fewer requests than that (the long run proves its count). FUZZ_SEED replays a run.
"""

import json
import os
from collections import Counter
from datetime import timedelta

import hypothesis
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from apps.accounts.services import personal_token_create
from apps.common.timebounds import OUT_OF_RANGE
from apps.ingest.models import RawEvent
from apps.metrics.api import POINT_REFUSALS, TOO_EARLY
from apps.pipeline.services import aggregate_chunk
from apps.traces import api as traces_api
from apps.traces.search import _backend_for
from apps.traces.search.base import MAX_RESULT_WINDOW
from tests.conftest import TRACE_BACKENDS

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
MIN_CASES = int(os.environ.get("FUZZ_MIN_CASES", "0"))
SEED = os.environ.get("FUZZ_SEED", "")

INGESTION = ("ingest_batch", "ingest_event")
SUPPORT_READS = ("trace_get", "user_requests")
PRODUCT_READS = ("metrics_series", "metrics_users", "metrics_funnel", "metrics_retention")
ANALYSES = ("metrics_funnel", "metrics_retention")
# Annotations: a service key posts (not ingestion: nothing goes to RawEvent), people read.
ANNOTATION_POSTS = ("annotations_create",)
OTHER_READS = ("annotations_list", "correlation_coverage")
# Other senders' formats live outside /api/v1/ (not fuzzed here; tests/wire sends with the real SDKs).
WIRE_FORMATS = (
    "posthog_batch",
    "posthog_capture",
    "posthog_e",
    "posthog_i_v0_e",
    "segment_batch",
    "segment_track",
    "segment_identify",
    "segment_page",
    "segment_screen",
    "segment_group",
    "segment_alias",
    "otlp_logs",
    "otlp_traces",
)


def _seed_searchable_data(store_events) -> None:
    """Store and aggregate one request across two services, so the schema's examples find real data."""
    now = timezone.now()
    cid, user_id = traces_api.EXAMPLE_CORRELATION_ID, traces_api.EXAMPLE_USER_ID
    ids = store_events(
        [
            {
                "service": "gateway",
                "event": "search_made",
                "correlation_id": cid,
                "user_id": user_id,
                "timestamp": (now - timedelta(minutes=5)).isoformat(),
                "properties": {"n_results": 12, "query": "ships near Rotterdam"},
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": "upstream timeout",
                "correlation_id": cid,
                "user_id": user_id,
                "timestamp": (now - timedelta(minutes=4)).isoformat(),
                "properties": {"attempt": 2},
            },
        ]
    )
    aggregate_chunk(event_ids=ids)


def _served_schema() -> dict:
    """Return the document /api/schema/ serves, made by the same generator (collection needs no login)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


def _schemathesis_config() -> schemathesis.Config:
    config = {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "database": "none",
            # Each test sends real credentials; generated ones would only be replaced.
            "with-security-parameters": False,
        },
        # One request per case: the stateful phase chains operations, and this API has no links between them.
        "phases": {"stateful": {"enabled": False}},
    }
    if SEED:
        config["seed"] = int(SEED)
    return schemathesis.Config.from_dict(config)


# Loaded eagerly so each operation is its own test (schemathesis' fixture-based loader needs pytest < 9.2).
schema = schemathesis.openapi.from_dict(_served_schema(), config=_schemathesis_config()).include(
    path_regex="^/api/v1/"
)
schema.app = WSGIHandler()


def test_the_fuzzed_schema_is_the_one_served_at_api_schema(client, make_person):
    client.force_login(make_person("support"))

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert response.json() == _served_schema()
    operations = {op["operationId"] for path in response.json()["paths"].values() for op in path.values()}
    assert operations == {
        *INGESTION,
        *SUPPORT_READS,
        *PRODUCT_READS,
        *ANNOTATION_POSTS,
        *OTHER_READS,
        *WIRE_FORMATS,
    }, "a new operation needs credentials here"


@pytest.fixture
def credentials(
    transactional_db, settings, broker_url, elasticsearch_url, make_key, make_person, store_events
):
    """Return the Authorization header each operation needs, with searchable data behind the examples.

    Real commits (transactional_db): an ingestion request is answered after its own commit, as in
    production, and the read APIs search Elasticsearch, the production backend.
    """
    import redis

    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    # The per-key and per-person throttles have their own tests; here they would turn most of the fuzz into
    # 429s. 429 stays documented and is checked like every other answer.
    settings.INGEST_RATE_LIMIT = "1000000/min"
    settings.API_READ_RATE_LIMIT = "1000000/min"
    _seed_searchable_data(store_events)

    _, service_key = make_key(service="fuzz-sender", stage="prod")
    _, support_token = personal_token_create(user=make_person("support"), label="fuzz")
    _, product_token = personal_token_create(user=make_person("product"), label="fuzz")
    headers = {
        **dict.fromkeys(INGESTION, {"Authorization": f"Bearer {service_key}"}),
        **dict.fromkeys(SUPPORT_READS, {"Authorization": f"Bearer {support_token}"}),
        **dict.fromkeys(PRODUCT_READS, {"Authorization": f"Bearer {product_token}"}),
        **dict.fromkeys(ANNOTATION_POSTS, {"Authorization": f"Bearer {service_key}"}),
        **dict.fromkeys(OTHER_READS, {"Authorization": f"Bearer {support_token}"}),
    }
    yield headers
    # Every accepted event queued a pipeline task that no worker here consumes.
    redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture
def case_tally(fuzz_cases):
    """Count this run's cases per operation; with FUZZ_MIN_CASES, fail an operation that got fewer."""
    run: dict[str, Counter] = {}
    yield run
    for label, modes in run.items():
        fuzz_cases[label].update(modes)
    short = {label: sum(modes.values()) for label, modes in run.items() if sum(modes.values()) < MIN_CASES}
    assert not short, f"operations with fewer than {MIN_CASES} cases: {short}"


def _items_sent(case) -> int:
    """Return how many events an ingestion request carried (the answer must account for each)."""
    if _operation_id(case) == "ingest_event":
        return 1
    body = case.body
    return len(body["batch"]) if isinstance(body, dict) else len(body)


def _operation_id(case) -> str:
    return case.operation.definition.raw["operationId"]


def _json(response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _checks_that_do_not_apply(case, response) -> list:
    """Return the built-in checks this answer is exempt from, each for a reason the schema cannot express.

    Everything else (server errors, documented status, content type, headers, body schema, ignored
    auth, negative data refused, valid data accepted) is checked on every case.
    """
    operation_id, body, status = _operation_id(case), _json(response), response.status_code
    negative = case.meta.generation.mode.value == "negative"
    if operation_id == "ingest_batch" and negative:
        # A batch stores its valid items and lists the refused ones (DESIGN.md), so an invalid item inside
        # an otherwise valid batch earns a 202. That it was refused is asserted in the test instead.
        return [negative_data_rejection]
    if operation_id == "ingest_batch" and status == 400 and body["detail"].startswith("sent_at: "):
        # sent_at is text or a number, but which texts are times (ISO-8601 or numeric) is up to the parser.
        return [positive_data_acceptance]
    if operation_id == "ingest_event" and not negative and status == 400 and "errors" in body:
        # Conform refuses what JSON Schema cannot say: timestamps before 2000, text over 200 characters
        # after trimming or with control characters, unknown levels, 32 KB per event, depth 16. Such a
        # refusal names the field; a malformed-body 400 on valid data still fails.
        return [positive_data_acceptance]
    if operation_id == "user_requests" and status == 400 and set(body) == {"page"}:
        # page and per_page are each within their bounds, but their product passes the result window.
        page, per_page = _whole(case.query, "page", 1), _whole(case.query, "per_page", 50)
        if page and per_page and page * per_page > MAX_RESULT_WINDOW:
            return [positive_data_acceptance]
    if operation_id in PRODUCT_READS and status == 400 and body in ({"to": TOO_EARLY}, {"from": TOO_EARLY}):
        # A valid `to` near year 1 leaves no room for the default 7 days before it (or `compare`'s period).
        return [positive_data_acceptance]
    if (
        operation_id in (*SUPPORT_READS, *PRODUCT_READS, *ANNOTATION_POSTS, *OTHER_READS)
        and status == 400
        and set(body) <= {"from", "to", "timestamp"}
        and all(OUT_OF_RANGE in message for message in body.values())
    ):
        # A valid date-time outside 1900..9000, where read paths stop computing (JSON Schema cannot say so).
        return [positive_data_acceptance]
    if operation_id in OTHER_READS and status == 400 and body == {"to": "the range must end after it starts"}:
        # from and to each valid, but in the wrong order.
        return [positive_data_acceptance]
    if operation_id in ANALYSES and status == 400:
        # Each parameter valid, but the range ends before it starts (a `from` after now, say), holds more
        # cohorts than one table shows, starts before year 1 by default, or names a property over 200
        # characters.
        if all(str(message).startswith(RANGE_REFUSALS) or message == TOO_EARLY for message in body.values()):
            return [positive_data_acceptance]
    if operation_id == "metrics_series" and status == 400 and set(body) <= {"detail", "filter"}:
        # Each parameter valid, but the range ends before it starts or holds too many points, or a property
        # name is longer than 200 characters.
        if all(str(message).startswith(RANGE_REFUSALS) for message in body.values()):
            return [positive_data_acceptance]
    if operation_id == "metrics_users" and status == 400 and len(body) == 1:
        # Each parameter valid alone, not together: a range that ends before it starts, a value or rest
        # without a breakdown, both, exclude without rest; or a property name over 200 characters.
        (message,) = body.values()
        if message in POINT_REFUSALS.values() or str(message).startswith(RANGE_REFUSALS):
            return [positive_data_acceptance]
    return []


def _whole(query: dict | None, name: str, default: int) -> int | None:
    """Return a query parameter sent as one whole number (or its default); None for anything else."""
    value = (query or {}).get(name)
    if value is None:
        return default
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# from/to each valid but the range empty or too long; a property name over 200 characters (the schema's
# patterns cannot bound a trimmed length); more points than one answer holds.
RANGE_REFUSALS = (
    "the range must end after it starts",
    "more than ",
    "A property name has at most",
)


@schema.parametrize()
# The fixtures hold credentials and seeded data that every request shares on purpose.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_no_request_breaks_an_api_or_gets_an_undocumented_answer(case, credentials, case_tally):
    operation_id = _operation_id(case)
    headers = credentials[operation_id]
    case_tally.setdefault(case.operation.label, Counter())[case.meta.generation.mode.value] += 1
    ingestion = operation_id in INGESTION
    rows_before = RawEvent.objects.count() if ingestion else 0

    response = case.call(headers=headers)

    if ingestion:
        # What the answer says was stored is exactly what was stored: all of a 202's accepted events,
        # nothing at all for a refused request.
        stored = RawEvent.objects.count() - rows_before
        if response.status_code == 202:
            body = response.json()
            assert stored == body["accepted"], (body, stored)
            assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == _items_sent(case), body
            if case.meta.is_negative_at(ParameterLocation.BODY):
                # Invalid data in a 202'd batch can only be in its items, which must then be refused. (A
                # negative case may be invalid elsewhere only, a header say, with a valid body.)
                assert body["rejected"], ("an invalid batch was stored whole", case.body)
        else:
            assert stored == 0, (response.status_code, stored)
    case.validate_response(
        response, headers=headers, excluded_checks=_checks_that_do_not_apply(case, response)
    )


# The calendar's edges and beyond, as ISO text (with offsets that push past them) and epoch numbers; and
# clocks off by the amounts conform treats differently (latency, corrected skew, not corrected).
EDGE_TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+14:00",
        "1970-01-01T00:00:00Z",
        "2262-04-11T23:47:16Z",
        253402300799,
        -62135596800,
        1e11,
        1e18,
        -1e18,
        "253402300800",
        "1e400",
    ]
)
SKEWS = st.sampled_from([0, 1, 3600, -3600, 23 * 3600, -23 * 3600, 25 * 3600, -25 * 3600, 10**9])


@st.composite
def batches_at_the_calendars_edges(draw):
    """Draw schema-valid batches (schemathesis' positive strategy), then put sent_at and some timestamps at
    the calendar's edges."""
    case = draw(schema["/api/v1/batch"]["POST"].as_strategy())
    items = case.body["batch"] if isinstance(case.body, dict) else case.body
    items = [item if isinstance(item, dict) else {} for item in items]
    for item in items:
        if draw(st.booleans()):
            item["timestamp"] = draw(EDGE_TIMES)
        elif draw(st.booleans()):
            item["timestamp"] = draw(st.floats(allow_nan=False, allow_infinity=False))
    # Mostly a real clock that is off, sometimes a sent_at at the edges itself.
    skewed = (timezone.now() - timedelta(seconds=draw(SKEWS))).isoformat()
    sent_at = draw(st.sampled_from([skewed, skewed, skewed, draw(EDGE_TIMES)]))
    case.body = {"batch": items, "sent_at": sent_at}
    return case


@hypothesis.given(case=batches_at_the_calendars_edges())
@hypothesis.settings(
    max_examples=MAX_EXAMPLES * 4,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)
def test_sent_at_and_timestamps_at_the_calendars_edges_never_lose_a_batch(case, credentials):
    rows_before = RawEvent.objects.count()

    response = case.call(headers=credentials["ingest_batch"])

    # A whole-batch 400 only for a sent_at that is not a time; any timestamp refuses only its own item.
    assert response.status_code in (202, 400), response.text
    body = response.json()
    if response.status_code == 400:
        assert body["detail"].startswith("sent_at: "), body
        assert RawEvent.objects.count() == rows_before
        return
    assert RawEvent.objects.count() - rows_before == body["accepted"]
    assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(case.body["batch"])
    case.validate_response(response, headers=credentials["ingest_batch"])
