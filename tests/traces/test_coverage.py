"""Correlation coverage: exact counts on known traffic, the 90 % flag, and who may read it."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.accounts.services import personal_token_create
from apps.traces.coverage import correlation_coverage
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
URL = "/api/v1/coverage"
RANGE = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def _event(service: str, cid: str = "", seconds: float = 0, **fields) -> None:
    RawEventFactory(service=service, correlation_id=cid, timestamp=T + timedelta(seconds=seconds), **fields)


@pytest.fixture
def known_traffic():
    """gateway starts three requests and passes their IDs on; search continues two of them and starts a
    fourth itself (a lost header); search also sends 18 metric events without any ID; billing logs one line
    with an ID it continued. Spans and events outside the range do not count."""
    for n, cid in enumerate(("r1", "r2", "r3")):
        _event("gateway", cid, seconds=n * 10)
        _event("gateway", cid, seconds=n * 10 + 5, type="log", level="info", event="log", message="done")
    _event("search", "r1", seconds=1)
    _event("search", "r1", seconds=2)
    _event("search", "r2", seconds=11)
    _event("search", "s-own", seconds=100)
    for n in range(18):
        _event("search", "", seconds=200 + n)
    _event("billing", "r3", seconds=21, type="log", level="error", event="log", message="card declined")
    # Not counted: a span (OTLP always gives it the trace ID) and events outside the range.
    _event("billing", "r9", seconds=-1, type="span", event="charge", span_id="ab" * 8)
    _event("gateway", "", seconds=-13 * 3600)
    _event("search", "", seconds=13 * 3600)


def test_coverage_counts_events_ids_and_started_trails_per_service(known_traffic):
    rows = {
        row.service: row.as_json()
        for row in correlation_coverage(
            start=datetime(2026, 11, 30, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC)
        )
    }

    assert rows == {
        "billing": {
            "service": "billing",
            "events": 1,
            "with_correlation_id": 1,
            "share": 1.0,
            "trails": 1,
            "started": 0,
            "continued": 1,
            "flagged": False,
        },
        "gateway": {
            "service": "gateway",
            "events": 6,
            "with_correlation_id": 6,
            "share": 1.0,
            "trails": 3,
            "started": 3,
            "continued": 0,
            "flagged": False,
        },
        "search": {
            "service": "search",
            "events": 22,
            "with_correlation_id": 4,
            "share": round(4 / 22, 4),
            "trails": 3,
            "started": 1,
            "continued": 2,
            "flagged": True,
        },
    }


def test_the_flag_is_set_below_ninety_percent_and_not_at_it():
    for n in range(9):
        _event("at-ninety", f"c{n}", seconds=n)
        _event("below", f"d{n}", seconds=n)
    _event("at-ninety", "", seconds=50)
    _event("below", "", seconds=50)
    _event("below", "", seconds=51)

    rows = {r.service: r for r in correlation_coverage(start=T, end=T + timedelta(hours=1))}

    assert (rows["at-ninety"].share, rows["at-ninety"].flagged) == (0.9, False)
    assert rows["below"].flagged is True
    assert rows["below"].percent == 81.8


def test_the_api_answers_the_same_counts(client, make_person, known_traffic):
    client.force_login(make_person("support"))

    response = client.get(URL, RANGE)

    assert response.status_code == 200
    body = response.json()
    assert [
        (s["service"], s["events"], s["with_correlation_id"], s["started"], s["flagged"])
        for s in body["services"]
    ] == [
        ("billing", 1, 1, 0, False),
        ("gateway", 6, 6, 3, False),
        ("search", 22, 4, 1, True),
    ]
    assert body["threshold"] == 0.9


def test_the_api_range_excludes_its_end_and_defaults_to_the_last_day(client, make_person):
    client.force_login(make_person("admin"))
    _event("gateway", "r1", seconds=0)

    assert (
        client.get(URL, {"from": "2026-11-30T11:00:00Z", "to": "2026-11-30T12:00:00Z"}).json()["services"]
        == []
    )
    assert client.get(URL).json()["services"] == []  # T is days ago


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "noon"}, "from"),
        ({"to": "2026-11-30T00:00:00"}, "to"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(client, make_person, params, field):
    client.force_login(make_person("support"))

    response = client.get(URL, params)

    assert response.status_code == 400
    assert set(response.json()) == {field}


@pytest.mark.parametrize(("role", "expected"), [("support", 200), ("admin", 200), ("product", 403)])
def test_support_and_admins_read_coverage_product_does_not(client, make_person, role, expected):
    client.force_login(make_person(role))

    assert client.get(URL).status_code == expected


def test_anonymous_callers_and_service_keys_are_refused(client, api_client, make_key):
    _, secret = make_key()

    assert client.get(URL).status_code in (401, 403)
    assert api_client.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code in (401, 403)


def test_a_support_token_reads_coverage_and_a_product_token_does_not(api_client, make_person):
    _, support = personal_token_create(user=make_person("support"), label="script")
    _, product = personal_token_create(user=make_person("product"), label="script")

    assert api_client.get(URL, HTTP_AUTHORIZATION=f"Bearer {support}").status_code == 200
    assert api_client.get(URL, HTTP_AUTHORIZATION=f"Bearer {product}").status_code == 403
