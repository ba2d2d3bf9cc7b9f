"""The one paste box: /traces/?q= opens a correlation ID, a trace ID or a user ID directly, else searches
text, and says what it looked the value up as."""

import json
import subprocess
import sys
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEntry
from apps.traces.paste import LookedUpAs, paste_recognise, trace_id_in
from tests.conftest import REPO, TRACE_BACKENDS, portal_env

pytestmark = pytest.mark.django_db

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def recent(seconds: float) -> str:
    # Within the text search's default range (the last 7 days).
    return (timezone.now() - timedelta(hours=1) + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def stored(store_events):
    """A request with a user, a trace from OpenTelemetry, and a value that is both a request and a user."""
    store_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-1",
                "user_id": "ada",
                "timestamp": recent(0),
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": "upstream timeout after 30s",
                "correlation_id": "req-1",
                "timestamp": recent(1),
            },
            {
                "service": "tiles",
                "type": "span",
                "event": "GET /tiles",
                "span_id": SPAN_ID,
                "duration_ms": 12.5,
                "correlation_id": TRACE_ID,
                "timestamp": recent(2),
            },
            {"service": "gateway", "event": "opened", "correlation_id": "both-1", "timestamp": recent(3)},
            {
                "service": "gateway",
                "event": "opened",
                "correlation_id": "req-3",
                "user_id": "both-1",
                "timestamp": recent(4),
            },
            {
                "service": "download",
                "type": "log",
                "message": "upstream timeout again",
                "correlation_id": "req-4",
                "timestamp": recent(5),
            },
        ]
    )


def paste(client, q: str, **params):
    return client.get("/traces/", {"q": q, **params})


def opened(client, response) -> tuple[str, str]:
    """Follow a paste box redirect as a browser would; return the page's path and its text."""
    assert response.status_code == 302, response.content[:500]
    page = client.get(urlsplit(response["Location"]).path)
    assert page.status_code == 200
    return response["Location"], page.content.decode()


def test_an_existing_correlation_id_opens_its_trail(support_client, trace_backend, stored):
    location, page = opened(support_client, paste(support_client, "  req-1\n"))

    assert location == "/traces/req-1/"
    assert "Looked up as correlation ID: req-1" in page
    assert "upstream timeout after 30s" in page


@pytest.mark.parametrize(
    "q",
    [
        TRACE_ID.upper(),
        f"00-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-00",
        f"traceparent: 00-{TRACE_ID}-{SPAN_ID}-01",
    ],
)
def test_a_trace_id_or_a_traceparent_opens_the_trace(support_client, trace_backend, stored, q):
    location, page = opened(support_client, paste(support_client, q))

    assert location == f"/traces/{TRACE_ID}/"
    assert f"Looked up as trace ID: {TRACE_ID}" in page
    assert "GET /tiles" in page


def test_a_trace_id_as_stored_opens_the_trace_in_one_look_up(support_client, stored):
    location, _ = opened(support_client, paste(support_client, TRACE_ID))

    assert location == f"/traces/{TRACE_ID}/"


def test_a_user_id_opens_that_users_requests(support_client, trace_backend, stored):
    location, page = opened(support_client, paste(support_client, "ada"))

    assert location == "/users/ada/"
    assert "Looked up as user ID: ada" in page
    assert 'href="/traces/req-1/"' in page


def test_a_correlation_id_wins_over_the_same_user_id(support_client, trace_backend, stored):
    location, page = opened(support_client, paste(support_client, "both-1"))

    assert location == "/traces/both-1/"
    assert "Looked up as correlation ID" in page


def test_text_lists_the_requests_whose_messages_match(support_client, trace_backend, stored):
    response = paste(support_client, "upstream timeout")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Looked up as text: <code>upstream timeout</code> in messages, last 7 days." in page
    assert "No event has it as a correlation ID or a user ID." in page
    assert page.index('href="/traces/req-4/"') < page.index('href="/traces/req-1/"')
    assert "Nothing matched" not in page
    # The detailed form stays, holding what was searched, and so does the box.
    assert response.context["form"]["text"].value() == "upstream timeout"
    assert 'name="q" value="upstream timeout"' in page
    assert AuditEntry.objects.filter(action=AuditEntry.REQUESTS_SEARCHED).count() == 1


def test_text_held_by_exactly_one_request_opens_its_trail(support_client, trace_backend, stored):
    location, page = opened(support_client, paste(support_client, "timeout after 30s"))

    assert location == "/traces/req-1/"
    assert "Looked up as text: timeout after 30s (one request matched)" in page
    # The search that found it is accounted for, and so is the trail it opened.
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {AuditEntry.REQUESTS_SEARCHED, AuditEntry.TRAIL_VIEWED} <= actions


def test_a_page_past_the_only_request_holding_the_text_is_an_empty_page(
    support_client, trace_backend, stored
):
    response = paste(support_client, "timeout after 30s", page=2)

    assert response.status_code == 200
    assert response.context["result"].total == 1
    assert response.context["result"].requests == []


def test_text_pages_keep_the_pasted_value(support_client, store_events):
    store_events(
        [
            {"type": "log", "message": "disk full", "correlation_id": f"req-{i}", "timestamp": recent(i)}
            for i in range(60)
        ]
    )

    first = paste(support_client, "disk full").content.decode()
    second = paste(support_client, "disk full", page=2).content.decode()

    assert "?q=disk+full&amp;page=2" in first
    assert "page 2 of 2" in second and "?q=disk+full&amp;page=1" in second


def test_nothing_matched_says_what_was_tried(support_client, trace_backend, stored):
    plain = paste(support_client, "nobody-here").content.decode()
    trace_like = paste(support_client, "F" * 32, range="24h").content.decode()

    assert "Nothing matched. Tried: correlation ID, user ID, text (last 7 days)." in plain
    assert "No requests match" in plain
    assert f"No event has it as a correlation ID, a trace ID (<code>{'f' * 32}</code>) or a user ID." in (
        trace_like
    )
    assert "Nothing matched. Tried: correlation ID, trace ID, user ID, text (last 24 hours)." in trace_like


@pytest.mark.parametrize("hostile", ["a/b", "50%off/..", "order 42", "..", ".", "x%2Fy", "../../admin/"])
def test_ids_with_slashes_percents_spaces_and_dots_open_their_own_pages(
    support_client, store_events, hostile
):
    store_events(
        [
            {"event": "opened", "correlation_id": hostile, "timestamp": recent(0)},
            {"event": "opened", "correlation_id": "req-9", "user_id": f"{hostile}!", "timestamp": recent(1)},
        ]
    )

    for q, name, prefix in ((hostile, "correlation_id", "/traces/"), (f"{hostile}!", "user_id", "/users/")):
        response = paste(support_client, q)

        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert location.path.startswith(prefix)
        assert location.path.count("/") == 3  # the ID stays one path segment…
        if "/" in q or q in (".", ".."):  # …or, where no segment can carry it, moves to the query string
            assert location.path == f"{prefix}-/" and parse_qs(location.query) == {name: [q]}
        page = support_client.get(response["Location"])
        assert page.status_code == 200
        assert page.context[name] == q


@pytest.mark.parametrize("q", ["", "   ", "\n"])
def test_an_empty_paste_shows_the_form_as_before(support_client, q):
    response = paste(support_client, q)

    assert response.status_code == 200
    assert b"Requests, newest first" not in response.content
    assert b"Looked up as" not in response.content


def test_a_value_too_long_to_look_up_is_a_400_naming_q(support_client):
    response = paste(support_client, "x" * 501)

    assert response.status_code == 400
    assert "Find (q): Too long to look up: it has 501 characters, at most 500 are searched." in (
        response.content.decode()
    )


def test_a_null_character_is_a_400_naming_q(support_client):
    response = paste(support_client, "req\x00-1")

    assert response.status_code == 400
    assert "Find (q): Null characters are not allowed." in response.content.decode()


def test_a_bad_page_with_a_paste_is_a_400_naming_the_field(support_client):
    response = paste(support_client, "timeout", page="0")

    assert response.status_code == 400
    assert response.context["form"].errors["page"]


@pytest.mark.parametrize("q", ["line one\nline two", "y" * 201])
def test_a_value_that_cannot_be_an_id_is_searched_only_as_text(support_client, store_events, q):
    store_events(
        [{"type": "log", "message": q, "correlation_id": f"req-{i}", "timestamp": recent(0)} for i in (1, 2)]
    )

    response = paste(support_client, q)

    page = response.content.decode()
    assert response.status_code == 200
    assert "It cannot be an ID" in page
    assert 'href="/traces/req-1/"' in page


def test_each_id_check_is_one_query_on_the_database_backend(
    settings, store_events, django_assert_num_queries
):
    settings.TRACE_BACKEND = TRACE_BACKENDS["database"]
    store_events([{"event": "opened", "correlation_id": "req-1", "user_id": "ada", "timestamp": recent(0)}])

    with django_assert_num_queries(1):
        assert paste_recognise(value="req-1").found == LookedUpAs.CORRELATION_ID
    with django_assert_num_queries(2):
        assert paste_recognise(value="ada").found == LookedUpAs.USER_ID
    with django_assert_num_queries(3):  # as given, as a trace ID, as a user
        missing = paste_recognise(value=TRACE_ID.upper())
    assert missing.found is None
    assert [(a.kind, a.value) for a in missing.tried] == [
        (LookedUpAs.CORRELATION_ID, TRACE_ID.upper()),
        (LookedUpAs.TRACE_ID, TRACE_ID),
        (LookedUpAs.USER_ID, TRACE_ID.upper()),
        (LookedUpAs.TEXT, TRACE_ID.upper()),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TRACE_ID, TRACE_ID),
        (f" {TRACE_ID.upper()} ", TRACE_ID),
        (f"00-{TRACE_ID}-{SPAN_ID}-01", TRACE_ID),
        (f"TraceParent:00-{TRACE_ID}-{SPAN_ID}-01", TRACE_ID),
        ("0" * 32, ""),
        (f"00-{TRACE_ID}-{'0' * 16}-01", ""),
        (TRACE_ID[:-1], ""),
        (TRACE_ID + "0", ""),
        ("req-1", ""),
    ],
)
def test_what_counts_as_a_trace_id(value, expected):
    assert trace_id_in(value) == expected


def test_the_paste_box_needs_a_login(client):
    response = paste(client, "req-1")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_product_without_support_gets_what_traces_answered_before(client, make_person, stored):
    client.force_login(make_person("product"))

    assert paste(client, "req-1").status_code == 403
    assert paste(client, "ada").status_code == 403
    assert client.get("/traces/").status_code == 403


@pytest.mark.parametrize("role", ["support", "admin"])
def test_support_and_admin_use_the_paste_box(client, make_person, stored, role):
    client.force_login(make_person(role))

    assert paste(client, "req-1")["Location"] == "/traces/req-1/"
    assert paste(client, "upstream timeout").status_code == 200


@pytest.mark.parametrize(("role", "shown"), [("support", True), ("admin", True), ("product", False)])
@pytest.mark.parametrize("path", ["/", "/account/tokens/"])
def test_the_box_is_in_the_header_for_those_who_may_search_traces(client, make_person, role, shown, path):
    client.force_login(make_person(role))

    page = client.get(path).content.decode()

    header = page[page.index('<header class="topbar">') : page.index("</header>")]
    assert ('<form class="paste-box"' in header) is shown
    # The Traces link too: product would only meet a 403 behind it.
    assert ('href="/traces/">Traces</a>' in header) is shown
    if shown:
        assert 'action="/traces/"' in header and 'name="q"' in header


def test_the_box_is_not_shown_signed_out(client):
    assert b"paste-box" not in client.get("/login/").content


def test_opening_a_trail_from_the_box_is_audited_as_a_trail_view(support_client, stored):
    opened(support_client, paste(support_client, "req-1"))
    opened(support_client, paste(support_client, "ada"))

    assert list(AuditEntry.objects.order_by("pk").values_list("action", "target")) == [
        (AuditEntry.TRAIL_VIEWED, "req-1"),
        (AuditEntry.USER_VIEWED, "ada"),
    ]


EMBEDDED = r"""
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
from apps.accounts.actors import Actor
from apps.accounts.services import user_create
from apps.ingest.services import service_key_create
_, key = service_key_create(service_name="gateway", stage="dev", actor=Actor.command("tests"))
client = Client(HTTP_HOST="127.0.0.1")
from django.utils import timezone
now = timezone.now().isoformat()
batch = [{"event": "opened", "user_id": "u1", "correlation_id": "c-1", "timestamp": now},
         {"type": "log", "message": "quota exceeded", "correlation_id": "c-2", "timestamp": now},
         {"type": "log", "message": "quota exceeded", "correlation_id": "c-3", "timestamp": now}]
client.post("/api/v1/batch", json.dumps(batch), content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}")
client.force_login(user_create(username="sam", role="support", password="correct-horse-battery"))
answers = {q: client.get("/traces/", {"q": q}) for q in ("c-1", "u1", "quota")}
print(json.dumps({q: [r.status_code, r.get("Location"), "Looked up as text" in r.content.decode(),
                      "/traces/c-2/" in r.content.decode()] for q, r in answers.items()}))
"""


def test_the_paste_box_works_in_the_embedded_mode(tmp_path):
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)

    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "c-1": [302, "/traces/c-1/", False, False],
        "u1": [302, "/users/u1/", False, False],
        "quota": [200, None, True, True],
    }
