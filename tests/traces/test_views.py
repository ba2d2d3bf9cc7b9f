"""The support pages: search, one trail, surrounding logs, a user's requests."""

import re
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
XSS = '<script>alert("cid")</script><img src=x onerror=alert(1)>'


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_search_lists_requests_with_their_summary(support_client, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-1",
                "user_id": "u-1",
                "timestamp": at(0),
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": "upstream timeout",
                "correlation_id": "req-1",
                "timestamp": at(1.5),
            },
        ]
    )

    response = support_client.get("/traces/", {"user_id": "u-1", "range": "all"})

    page = response.content.decode()
    assert response.status_code == 200
    assert 'href="/traces/req-1/"' in page
    assert "download, gateway" in page
    assert "1.500 s" in page
    assert 'class="level level-error">error<' in page


def test_search_without_criteria_shows_only_the_form(support_client):
    response = support_client.get("/traces/")

    assert response.status_code == 200
    assert b"Requests, newest first" not in response.content


def test_a_trail_page_shows_every_event_with_notes_and_links(support_client, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-1",
                "userId": "u-1",
                "timestamp": at(0),
                "properties": {"path": "/tiles"},
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": "upstream timeout",
                "correlation_id": "req-1",
                "timestamp": at(0.4),
            },
        ]
    )

    response = support_client.get("/traces/req-1/")

    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("request_received") < page.index("upstream timeout")
    assert "userId renamed to user_id" in page
    assert 'href="/users/u-1/"' in page
    assert "/api/v1/traces/req-1?download=1" in page
    assert "surrounding logs" in page
    assert 'class="mark mark-error"' in page
    assert 'id="trail-data"' in page


def test_a_trails_spans_are_bars_on_their_lanes_nested_by_parent_with_errors_red(
    support_client, store_events
):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    span = {"type": "span", "correlation_id": trace_id}
    store_events(
        [
            {
                **span,
                "service": "gateway",
                "event": "GET /tiles",
                "span_id": "a" * 16,
                "duration_ms": 1000,
                "timestamp": at(0),
            },
            {
                **span,
                "service": "gateway",
                "event": "auth",
                "span_id": "b" * 16,
                "parent_span_id": "a" * 16,
                "duration_ms": 100,
                "timestamp": at(0.1),
            },
            {
                **span,
                "service": "tiles",
                "event": "render <b>",
                "span_id": "c" * 16,
                "parent_span_id": "a" * 16,
                "duration_ms": 500,
                "level": "error",
                "message": "renderer crashed",
                "timestamp": at(0.3),
            },
            {
                "service": "tiles",
                "type": "log",
                "message": "cache miss",
                "correlation_id": trace_id,
                "timestamp": at(0.4),
            },
        ]
    )

    page = support_client.get(f"/traces/{trace_id}/").content.decode()

    assert page.count('class="span-bar span-normal"') == 2
    assert page.count('class="span-bar span-error"') == 1
    # The root on the gateway's first span row, its child on the next; the tiles lane's one span on its first.
    assert 'data-depth="0"><title>+0.000s gateway span GET /tiles: 1000.000 ms</title>' in page
    assert 'data-depth="1"><title>+0.100s gateway span auth: 100.000 ms</title>' in page
    assert "<title>+0.300s tiles span render &lt;b&gt;: 500.000 ms (renderer crashed)</title>" in page
    assert page.count('<li class="span-row" aria-hidden="true"></li>') == 3
    assert 'class="mark mark-normal"' in page  # the log line, in place on the tiles lane
    assert '<span class="duration">500.000 ms</span>' in page
    assert f"span <code>{'c' * 16}</code> in <code>{'a' * 16}</code>" in page
    assert "render <b>" not in page


def test_a_trail_of_500_events_renders_with_a_bounded_number_of_queries(
    support_client, store_events, django_assert_max_num_queries
):
    store_events(
        [
            {
                "service": f"svc-{i % 5}",
                "event": "step",
                "correlation_id": "big",
                "timestamp": at(i / 10),
                "properties": {"i": i},
            }
            for i in range(500)
        ]
    )

    with django_assert_max_num_queries(6):
        response = support_client.get("/traces/big/")

    assert response.status_code == 200
    assert response.content.decode().count('<tr id="ev-') == 500


def test_hostile_values_are_shown_as_text(support_client, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": XSS,
                "correlation_id": XSS,
                "user_id": XSS,
                "message": XSS,
                "timestamp": at(0),
                "properties": {XSS: XSS},
            }
        ]
    )

    response = support_client.get("/traces/", {"user_id": XSS, "range": "all"})
    detail = support_client.get(f"/traces/{XSS}/")

    for page in (response.content.decode(), detail.content.decode()):
        assert "<script>alert" not in page
        assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;cid&quot;)&lt;/script&gt;" in detail.content.decode()


def test_an_unknown_trail_is_404(support_client):
    assert support_client.get("/traces/nothing-here/").status_code == 404


def test_surrounding_logs_include_other_requests_of_the_service(support_client, store_events):
    store_events(
        [
            {
                "service": "download",
                "type": "log",
                "message": "mine",
                "correlation_id": "req-1",
                "timestamp": at(0),
            },
            {
                "service": "download",
                "type": "log",
                "message": "neighbour",
                "correlation_id": "req-2",
                "timestamp": at(5),
            },
            {
                "service": "gateway",
                "type": "log",
                "message": "other service",
                "correlation_id": "req-3",
                "timestamp": at(1),
            },
        ]
    )

    response = support_client.get(
        "/traces/req-1/surrounding/", {"service": "download", "at": at(0), "seconds": 30}
    )

    page = response.content.decode()
    assert "mine" in page and "neighbour" in page
    assert "other service" not in page


def test_a_users_page_lists_their_requests(support_client, store_events):
    store_events(
        [
            {
                "service": "gateway",
                "event": "login",
                "correlation_id": f"req-{i}",
                "user_id": "u-7",
                "timestamp": at(i),
            }
            for i in range(3)
        ]
    )

    response = support_client.get("/users/u-7/", {"range": "all"})

    page = response.content.decode()
    assert page.index("req-2") < page.index("req-1") < page.index("req-0")


def test_pages_need_a_login_and_the_support_role(client, make_person):
    assert client.get("/traces/")["Location"].startswith("/login/")
    client.force_login(make_person("product"))

    assert client.get("/traces/").status_code == 403
    assert client.get("/users/u-1/").status_code == 403


@pytest.mark.parametrize("path", ["/traces/", "/users/u-7/"])
def test_a_page_number_past_the_result_window_is_not_a_server_error(support_client, store_events, path):
    # page=10000 asked Elasticsearch for results 499,950 onwards: a 500 before the form capped it.
    store_events([{"service": "gateway", "event": "login", "correlation_id": "req-0", "user_id": "u-7"}])

    response = support_client.get(path, {"user_id": "u-7", "range": "all", "page": "10000"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("user_id", "correlation_id"),
    [("../../admin/", "../../keys/x"), ("..", "."), ("a%41/b?c#d", "50%off/..")],
)
def test_links_built_from_hostile_ids_stay_on_their_pages(
    support_client, store_events, user_id, correlation_id
):
    import re
    from urllib.parse import parse_qs, unquote, urljoin, urlsplit

    store_events(
        [{"event": "opened", "correlation_id": correlation_id, "user_id": user_id, "timestamp": at(0)}]
    )
    search = support_client.get("/traces/", {"user_id": user_id, "range": "all"})
    [trail_href] = re.findall(r'href="(/traces/[^"]+)"', search.content.decode())

    trail_url = urljoin("http://testserver/traces/", trail_href.replace("&amp;", "&"))
    # What a browser does to the link: resolve "." and ".." segments, then send it (an ID with a "/" or of
    # dots travels in the query string, which the browser leaves alone).
    trail_path = urlsplit(trail_url).path
    assert trail_path.startswith("/traces/") and "/admin/" not in unquote(trail_path)
    trail = support_client.get(trail_path, query_params=parse_qs(urlsplit(trail_url).query))
    assert trail.status_code == 200
    assert trail.context["correlation_id"] == correlation_id

    [user_href] = set(re.findall(r'href="(/users/[^"]+)"', trail.content.decode()))
    user_url = urlsplit(urljoin(trail_url, user_href.replace("&amp;", "&")))
    assert user_url.path.startswith("/users/")
    user = support_client.get(user_url.path, query_params=parse_qs(user_url.query))
    assert user.status_code == 200
    assert user.context["user_id"] == user_id


@pytest.mark.parametrize(
    "params",
    [
        {"service": "gateway", "at": "9999-12-31T23:59:59+00:00", "seconds": "3600"},
        {"service": "gateway", "at": "0001-01-01T00:00:00+00:00", "seconds": "60"},
        {"service": "gateway", "at": "2026-13-01T00:00:00+00:00"},
    ],
)
def test_surrounding_logs_near_the_calendars_ends_answer_400_in_words(support_client, params):
    response = support_client.get("/traces/req-1/surrounding/", params)

    assert response.status_code == 400
    assert b"out of range" in response.content or b"Open this page from an event" in response.content


def test_a_custom_search_range_near_the_calendars_end_is_a_form_error(support_client):
    response = support_client.get(
        "/traces/",
        {"user_id": "u-1", "range": "custom", "start": "9999-12-31T23:00", "end": "9999-12-31T23:59"},
    )

    assert response.status_code in (200, 400)
    assert "out of range" in response.content.decode()


@pytest.mark.parametrize("path", ["/traces/", "/users/u-1/"])
def test_request_lists_read_a_fixed_number_of_queries_whatever_their_length(
    support_client, store_events, django_assert_max_num_queries, path
):
    store_events(
        [
            {
                "service": f"svc-{i % 3}",
                "event": "step",
                "correlation_id": f"req-{i // 2}",
                "user_id": "u-1",
                "timestamp": at(i),
            }
            for i in range(120)
        ]
    )
    params = {"user_id": "u-1", "range": "all"} if path == "/traces/" else {"range": "all"}

    with django_assert_max_num_queries(9):  # session, user, roles, audit, the search and its summaries
        response = support_client.get(path, params)

    assert response.status_code == 200
    assert response.content.decode().count('href="/traces/req-') >= 50


@pytest.mark.parametrize(
    "path",
    [
        "/traces/?user_id=u-1&range=all",
        "/traces/?q=anything",
        "/traces/req-1/",
        "/users/u-1/",
        "/traces/req-1/surrounding/?service=gateway&at=2026-11-25T10:00:00%2B00:00",
    ],
)
def test_pages_say_the_search_is_unavailable_with_503_when_elasticsearch_is_down(support_client, path):
    from django.test import override_settings

    from apps.traces.search import _backend_for
    from tests.conftest import TRACE_BACKENDS

    # A context manager, not the settings fixture: the index clean-up afterwards needs the real URL back.
    with override_settings(
        TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"], ELASTICSEARCH_URL="http://127.0.0.1:1"
    ):  # nothing listens on port 1
        _backend_for.cache_clear()
        response = support_client.get(path)
    _backend_for.cache_clear()

    assert response.status_code == 503
    assert response["Retry-After"]
    assert 'id="search-unavailable"' in response.content.decode()


def test_surrounding_logs_before_1970_are_an_empty_window(support_client, trace_backend, store_events):
    store_events([{"service": "gateway", "event": "x", "correlation_id": "c", "timestamp": at(0)}])

    response = support_client.get(
        "/traces/c/surrounding/", {"service": "gateway", "at": "1950-01-01T00:00:00+00:00"}
    )

    assert response.status_code == 200
    assert "Nothing in this window." in response.content.decode()


def test_a_users_older_page_keeps_the_pages_30_day_range(support_client, trace_backend, store_events):
    from django.utils import timezone

    ten_days_ago = timezone.now() - timedelta(days=10)
    store_events(
        [
            {
                "service": "gateway",
                "event": "opened",
                "correlation_id": f"r-{i:02}",
                "user_id": "u-p",
                "timestamp": (ten_days_ago - timedelta(minutes=i)).isoformat(),
            }
            for i in range(55)
        ]
    )
    first = support_client.get("/users/u-p/")
    assert first.context["result"].total == 55
    assert 'href="?&amp;page=2"' in first.content.decode()

    second = support_client.get("/users/u-p/", {"page": 2})  # the "older →" link

    assert [r.correlation_id for r in second.context["result"].requests] == [
        f"r-{i:02}" for i in range(50, 55)
    ]


def test_a_trail_longer_than_the_limit_says_it_is_cut(support_client, store_events, monkeypatch):
    monkeypatch.setattr("apps.traces.search.base.TRAIL_LIMIT", 3)  # as if the request had 5,001 events
    store_events(
        [
            {"service": "gateway", "event": f"step_{i}", "correlation_id": "req-long", "timestamp": at(i)}
            for i in range(4)
        ]
    )
    store_events([{"service": "gateway", "event": "only", "correlation_id": "req-short", "timestamp": at(0)}])

    long_page = support_client.get("/traces/req-long/").content.decode()
    short_page = support_client.get("/traces/req-short/").content.decode()

    assert 'id="trail-cut"' in long_page and "Only the first 3 events" in long_page
    assert "step_2" in long_page and "step_3" not in long_page
    assert 'id="trail-cut"' not in short_page


def test_a_trail_across_midnight_dates_the_rows_of_the_next_day(support_client, store_events):
    before = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC)
    events = [("request_received", 0), ("tile_rendered", 5), ("tile_sent", 20), ("request_done", 25)]
    store_events(
        [
            {
                "service": "gateway",
                "event": name,
                "correlation_id": "req-midnight",
                "timestamp": (before + timedelta(seconds=seconds)).isoformat(),
            }
            for name, seconds in events
        ]
    )

    html = support_client.get("/traces/req-midnight/").content.decode()

    times = re.findall(r'<td class="time">(.*?)</td>', html, flags=re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", t).split()) for t in times] == [
        "23:59:50.000",
        "23:59:55.000",
        "2026-11-26 00:00:10.000",
        "00:00:15.000",
    ]
