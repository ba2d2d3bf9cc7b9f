"""Property tests: whatever support types into the search, both backends answer without an error and only
with requests that really match (no query-syntax tricks reach other data)."""

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.traces.search import get_trace_backend
from apps.traces.search.base import TraceQuery

pytestmark = pytest.mark.django_db

TRICKS = [
    "*:*",
    "*",
    "?",
    "(",
    ")",
    '"',
    "[",
    "]",
    "{",
    "}",
    "\\",
    "/",
    "_index:obs-events",
    "_id:1",
    "message:*",
    "user_id:secret",
    "AND",
    "OR",
    "NOT",
    "-",
    "+",
    "~",
    "^2",
    "|",
    "&&",
    "<",
    ">",
    "'",
    ";",
]
hostile = st.lists(st.sampled_from(TRICKS) | st.text(max_size=12), max_size=8).map(" ".join) | st.text(
    max_size=300
)


@pytest.fixture
def secret_request(store_events):
    store_events(
        [
            {
                "service": "vault",
                "type": "log",
                "message": "secret rotation done",
                "correlation_id": "secret",
                "user_id": "secret",
                "timestamp": datetime(2026, 11, 25, 10, tzinfo=UTC).isoformat(),
            }
        ]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile, cid=st.text(max_size=50), user=st.text(max_size=50))
def test_hostile_search_input_never_errors_and_never_leaks(trace_backend, secret_request, text, cid, user):
    query = TraceQuery(text=text, correlation_id=cid.strip(), user_id=user.strip())

    page = get_trace_backend().search_requests(query, page=1, per_page=20)

    for request in page.requests:  # anything returned must really match the query's exact filters
        assert request.correlation_id == "secret"
        assert not query.correlation_id or query.correlation_id == "secret"
        assert not query.user_id or query.user_id == "secret"
        assert (
            all(word.lower() in "secret rotation done" for word in text.split())
            or trace_backend == "elasticsearch"
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cid=st.text(max_size=300))
def test_any_correlation_id_gives_a_trail_or_nothing(trace_backend, secret_request, cid):
    trail = get_trace_backend().trail(cid)

    assert trail == [] or (cid == "secret" and len(trail) == 1)
