"""Every page and read API asks the database a fixed number of queries, whatever the size of what it lists:
a query per row (N+1) is on STYLE.md's short list of dangerous constructs.

Each case builds a few rows, asks once to warm per-process caches, counts the queries of a second request,
then grows the data to many rows and counts again: the two counts must be equal.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import AuditEntry
from apps.accounts.services import personal_token_create
from apps.annotations.services import create_annotation
from apps.dashboards.services import chart_add, dashboard_create
from tests.factories import ApiKeyFactory, RawEventFactory, ServiceFactory

pytestmark = pytest.mark.django_db

SMALL, LARGE = 3, 60
CID = "req-query-counts"
USER = "qc-user"
CHART = "event=search_made&measure=count&interval=hour&range=24h&chart=line"


@dataclass
class World:
    """What a case's builders and URL may use: the signed-in person, the fixtures, one moment."""

    person: object
    request: pytest.FixtureRequest
    now: object
    state: dict

    def aggregate(self, events: list[dict]) -> None:
        self.request.getfixturevalue("aggregate_events")(events)


@dataclass(frozen=True)
class Case:
    role: str
    url: Callable[[World], str]
    grow: Callable[[World, range], None]  # add the rows of these indexes
    setup: Callable[[World], None] = lambda world: None
    shows: str = ""  # text the page holds with LARGE rows (they are listed, not only counted)


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- builders: each adds rows number `i` for i in `indexes` ------------------------------------------------


def _keys(world, indexes):
    for i in indexes:
        key = ApiKeyFactory(service=ServiceFactory(name=f"qc-svc-{i}"), label=f"key {i}")
        RawEventFactory(api_key=key, service=key.service.name, received_at=world.now, timestamp=world.now)


def _tokens(world, indexes):
    for i in indexes:
        personal_token_create(user=world.person, label=f"token {i}")


def _trail(world, indexes):
    for i in indexes:
        RawEventFactory(
            correlation_id=CID,
            service=f"qc-svc-{i % 7}",
            user_id=f"u{i}",
            message=f"line {i}",
            level="info",
            type="log",
            timestamp=world.now - timedelta(seconds=i),
            received_at=world.now,
        )


def _user_requests(world, indexes):
    for i in indexes:
        for service in ("gateway", "search-api"):
            RawEventFactory(
                correlation_id=f"req-{i}",
                service=service,
                user_id=USER,
                level="warning" if i % 2 else "info",
                message=f"qc request {i}",
                type="log",
                timestamp=world.now - timedelta(minutes=i),
                received_at=world.now,
            )


def _annotations(world, indexes):
    for i in indexes:
        create_annotation(
            service=f"qc-svc-{i}",
            stage="prod",
            text=f"deploy {i}",
            timestamp=world.now - timedelta(minutes=i),
        )


def _services_traffic(world, indexes):
    """Aggregated events: one service, one user and one correlation ID per index."""
    world.aggregate(
        [
            {
                "event": "search_made" if i % 2 else "forecast_requested",
                "service": f"qc-svc-{i}",
                "user_id": f"qc-u{i}",
                "correlation_id": f"req-{i}",
                "timestamp": _iso(world.now - timedelta(minutes=5 + i)),
                "properties": {"plan": f"plan-{i}", "ms": i},
            }
            for i in indexes
        ]
        + [
            {
                "event": "search_made",
                "service": f"qc-svc-{i}",
                "user_id": f"qc-u{i}",
                "correlation_id": f"req-{i}",
                "timestamp": _iso(world.now - timedelta(minutes=4)),
            }
            for i in indexes
        ]
    )


def _dashboards(world, indexes):
    from apps.accounts.services import user_create

    for i in indexes:
        owner = user_create(username=f"qc-owner-{i}", role="product", password="correct-horse-battery")
        dashboard = dashboard_create(name=f"Board {i}", owner=owner if i % 2 else world.person)
        chart_add(dashboard=dashboard, title=f"chart {i}", query_string=CHART)


def _audit_entries(world, indexes):
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=world.person,
            actor_name=world.person.get_username(),
            action=AuditEntry.TRAIL_VIEWED,
            target=f"req-{i}",
            via="page",
        )
        for i in indexes
    )


def _services(world, indexes):
    for i in indexes:
        ServiceFactory(name=f"qc-svc-{i}")


def _raw_events(world, indexes):
    for i in indexes:
        RawEventFactory(
            service=f"qc-svc-{i}",
            api_key=ApiKeyFactory(service=ServiceFactory(name=f"qc-svc-{i}")),
            timestamp=world.now,
            received_at=world.now,
            awaiting_aggregation=bool(i % 2),
        )


# --- URLs --------------------------------------------------------------------------------------------------


def _range(world) -> str:
    return f"from={_iso(world.now - timedelta(hours=3))}&to={_iso(world.now + timedelta(minutes=1))}"


def _surrounding(world) -> str:
    return f"/traces/{CID}/surrounding/?service=qc-svc-0&at={_iso(world.now)}&seconds=300"


CASES = {
    # apps/ingest, apps/accounts
    "keys page": Case("admin", lambda w: "/keys/", _keys, shows="qc-svc-59"),
    "tokens page": Case("support", lambda w: "/account/tokens/", _tokens, shows="token 59"),
    # apps/traces (database backend)
    "trail page": Case("support", lambda w: f"/traces/{CID}/", _trail, shows="line 59"),
    "trail API": Case("support", lambda w: f"/api/v1/traces/{CID}", _trail, shows="line 59"),
    "surrounding page": Case("support", _surrounding, _trail, shows="line 56"),
    "search page": Case(
        "support", lambda w: "/traces/?service=gateway&range=24h", _user_requests, shows="req-49"
    ),
    "paste box text search": Case(
        "support", lambda w: "/traces/?q=qc+request&range=24h", _user_requests, shows="req-49"
    ),
    "user page": Case("support", lambda w: f"/users/{USER}/", _user_requests, shows="req-49"),
    "user requests API": Case(
        "support", lambda w: f"/api/v1/users/{USER}/requests", _user_requests, shows="req-49"
    ),
    "coverage API": Case("support", lambda w: "/api/v1/coverage", _services_traffic, shows="qc-svc-59"),
    # apps/annotations
    "annotations API": Case("product", lambda w: "/api/v1/annotations", _annotations, shows="deploy 59"),
    # apps/dashboards
    "overview": Case("admin", lambda w: "/", _services_traffic, shows="qc-svc-59"),
    "explorer": Case(
        "product",
        lambda w: (
            "/dashboards/?event=search_made&event=forecast_requested&breakdown=service&top=5"
            "&measure=count&interval=hour&range=24h&chart=line"
        ),
        _services_traffic,
    ),
    "explorer funnel": Case(
        "product",
        lambda w: (
            "/dashboards/?analysis=funnel&steps=forecast_requested,search_made&window=86400"
            "&breakdown=service&range=7d"
        ),
        _services_traffic,
    ),
    "dashboard list": Case("product", lambda w: "/dashboards/d/", _dashboards, shows="Board 59"),
    # (A dashboard's detail page reads each chart's series: one read per chart, as each is its own query.)
    "users page (product)": Case(
        "product", lambda w: f"/dashboards/users/?event=search_made&{_range(w)}", _services_traffic
    ),
    "users page (support: trails)": Case(
        "admin", lambda w: f"/dashboards/users/?event=search_made&{_range(w)}", _services_traffic
    ),
    # apps/metrics
    "series API": Case(
        "product",
        lambda w: f"/api/v1/metrics/series?event=search_made&breakdown=service&interval=hour&{_range(w)}",
        _services_traffic,
    ),
    "funnel API": Case(
        "product",
        lambda w: (
            f"/api/v1/metrics/funnel?steps=forecast_requested,search_made&breakdown=service&{_range(w)}"
        ),
        _services_traffic,
    ),
    "retention API": Case(
        "product",
        lambda w: "/api/v1/metrics/retention?start_event=forecast_requested&return_event=search_made",
        _services_traffic,
    ),
    "point users API": Case(
        "product", lambda w: f"/api/v1/metrics/users?event=search_made&{_range(w)}", _services_traffic
    ),
    # the admin's lists of our models
    "admin audit entries": Case(
        "admin", lambda w: "/admin/accounts/auditentry/", _audit_entries, shows="req-59"
    ),
    "admin annotations": Case(
        "admin", lambda w: "/admin/annotations/annotation/", _annotations, shows="deploy 59"
    ),
    "admin dashboards": Case(
        "admin", lambda w: "/admin/dashboards/dashboard/", _dashboards, shows="qc-owner-59"
    ),
    "admin services": Case("admin", lambda w: "/admin/ingest/service/", _services, shows="qc-svc-59"),
    "admin keys": Case("admin", lambda w: "/admin/ingest/apikey/", _keys, shows="qc-svc-59"),
    "admin raw events": Case("admin", lambda w: "/admin/ingest/rawevent/", _raw_events, shows="qc-svc-59"),
}

# N+1s in apps another person is editing: reported, not fixed here.


def _params() -> list:
    params = []
    for name, case in CASES.items():
        params.append(pytest.param(case, id=name))
    return params


def _count(client, url: str, shows: str = "") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:2000])
    assert shows in response.content.decode(), f"{url} does not show {shows!r}"
    return len(queries), [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("case", _params())
def test_queries_do_not_grow_with_the_rows_listed(case, client, make_person, database_traces, request):
    person = make_person(case.role)
    client.force_login(person)
    world = World(person=person, request=request, now=timezone.now().replace(microsecond=0), state={})
    case.setup(world)
    case.grow(world, range(SMALL))
    url = case.url(world)
    client.get(url)  # warm: content types, the token cache, …
    small, _ = _count(client, url)
    case.grow(world, range(SMALL, LARGE))
    large, sql = _count(client, url, case.shows)

    assert large == small, f"{small} queries with {SMALL} rows, {large} with {LARGE}:\n" + "\n".join(sql)


def test_annotations_of_many_ranges_beyond_the_limit_are_one_query(django_assert_num_queries):
    """Charts of custom ranges on one dashboard, more annotations than a chart shows: still one read for
    the annotations of the whole page (and each range gets exactly what annotations_between gives it)."""
    from apps.annotations.selectors import annotations_between, annotations_of_ranges

    now = timezone.now().replace(microsecond=0)
    for i in range(40):
        create_annotation(service="checkout", text=f"deploy {i}", timestamp=now - timedelta(minutes=i))
    for n in (SMALL, LARGE):
        ranges = [(now - timedelta(minutes=i + 20), now - timedelta(minutes=i % 17)) for i in range(n)]

        with django_assert_num_queries(2):  # the span's first limit + 1; then each range's firsts
            found = annotations_of_ranges(ranges, limit=5)

        assert {r: [a.pk for a in found[r]] for r in ranges} == {
            r: [a.pk for a in annotations_between(*r, limit=5)] for r in ranges
        }


@pytest.mark.parametrize("work", ["process_chunk", "aggregate_chunk", "index_chunk"])
def test_a_pipeline_chunk_asks_a_fixed_number_of_queries(work, database_traces):
    """The Celery tasks' chunk work (pipeline.process_events, aggregate_events, index_events) is set-based:
    as many statements for a chunk of 60 events as for one of 3."""
    from apps.pipeline import services

    run = getattr(services, work)
    now = timezone.now().replace(microsecond=0)
    counts = []
    for n in (SMALL, LARGE):
        ids = [
            RawEventFactory(
                service=f"qc-svc-{i}",
                event=f"event-{i % 5}",
                user_id=f"qc-u{i}",
                properties={"ms": i},
                timestamp=now - timedelta(minutes=i),
                received_at=now,
            ).pk
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as queries:
            outcome = run(event_ids=ids)
        counts.append(len(queries))
        done = outcome.aggregated.done if work == "process_chunk" else outcome.done
        assert done == n, outcome

    assert counts[0] == counts[1], counts
