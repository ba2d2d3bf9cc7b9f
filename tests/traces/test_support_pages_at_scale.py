"""The support pages at the sizes real incidents reach: 32 KB log lines, trails at the limit, windows with
more lines than a page holds, users with more requests than either search backend pages to."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HUGE = "A" * 30_000  # an unbroken token near the 32 KB limit of one event
TRACE = (
    "Traceback (most recent call last):\n"
    + '  File "app.py", line 1, in handler\n' * 200
    + "ValueError: boom"
)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def row(html: str, index: int) -> str:
    start = html.index(f'<tr id="ev-{index}"')
    return html[start : html.index("</tr>", start)]


def test_a_huge_log_line_shows_its_start_and_keeps_the_rest_behind_show_all(support_client, store_events):
    store_events(
        [
            {"service": "gateway", "type": "log", "message": HUGE, "correlation_id": "req-huge",
             "timestamp": at(0)},
            {"service": "gateway", "type": "log", "level": "error", "message": TRACE,
             "correlation_id": "req-huge", "timestamp": at(1)},
            {"service": "gateway", "type": "log", "message": "short line", "correlation_id": "req-huge",
             "timestamp": at(2)},
        ]
    )  # fmt: skip

    html = support_client.get("/traces/req-huge/").content.decode()

    huge, trace, short = row(html, 0), row(html, 1), row(html, 2)
    # The whole line is there, but inside a closed <details>; what shows at once is its start.
    shown = re.search(r'<span class="message">(.*?)</span>', huge, flags=re.S).group(1)
    assert 0 < len(shown) <= 1000
    assert '<details class="message-all"><summary>show all (30000 characters, 1 line)</summary>' in huge
    assert HUGE in huge
    # A stack trace: its first lines and its last one (the exception) are shown, the rest behind show all.
    shown = re.search(r'<span class="message">(.*?)</span>', trace, flags=re.S).group(1)
    assert shown.count("\n") <= 12 and shown.startswith("Traceback") and shown.endswith("ValueError: boom")
    assert "show all (" in trace and "202 lines)" in trace
    assert '<span class="message">short line</span>' in short and "message-all" not in short


def test_the_error_lines_of_a_long_trail_are_listed_at_its_top(support_client, store_events):
    events = [
        {"service": f"svc-{i % 3}", "type": "log", "message": f"line {i}", "correlation_id": "req-errs",
         "timestamp": at(i / 100)}
        for i in range(60)
    ]  # fmt: skip
    for i in (41, 57):
        events[i] |= {"level": "error", "message": f"failure {i}"}
    store_events(events)

    html = support_client.get("/traces/req-errs/").content.decode()

    errors = html[html.index('id="trail-errors"') : html.index("</ul>", html.index('id="trail-errors"'))]
    assert 'href="#trail-errors">2 errors</a>' in html[: html.index('<div class="timeline">')]
    assert re.findall(r'href="#(ev-\d+)"', errors) == ["ev-41", "ev-57"]
    assert "failure 41" in errors and "2 errors" in errors


def test_a_cut_trail_says_where_it_stops_and_how_to_see_the_rest(support_client, store_events, monkeypatch):
    monkeypatch.setattr("apps.traces.search.base.TRAIL_LIMIT", 3)  # as if the request had 5,001 events
    store_events(
        [
            {"service": f"svc-{i}", "event": f"step_{i}", "correlation_id": "req-long", "timestamp": at(i)}
            for i in range(5)
        ]
    )

    html = support_client.get("/traces/req-long/").content.decode()

    cut = html[html.index('id="trail-cut"') : html.index("</p>", html.index('id="trail-cut"'))]
    assert "2026-11-25 10:00:02" in cut  # where the shown events stop
    assert "The download holds the whole request" in cut
    # The rest: the next page of the trail, after the last event shown (tests/traces/test_trail_cursor.py
    # walks it; the surrounding page it linked to before repeated a moment shared by more than a page).
    [link] = re.findall(r'href="([^"]+)"', cut)
    rest = support_client.get(link.replace("&amp;", "&")).content.decode()
    assert "step_3" in rest and "step_4" in rest and "step_2" not in rest


def test_a_surrounding_window_with_more_lines_than_shown_shows_those_nearest_the_moment(
    support_client, store_events, monkeypatch
):
    monkeypatch.setattr("apps.traces.selectors.SURROUNDING_LIMIT", 5)  # as if 10,000 lines in one second
    store_events(
        [
            {"service": "tiles", "type": "log", "message": f"line {i}", "correlation_id": f"r-{i}",
             "timestamp": at(i / 100)}
            for i in range(20)
        ]
    )  # fmt: skip
    moment = T0 + timedelta(seconds=0.15)
    params = {"service": "tiles", "at": moment.isoformat(), "seconds": 1}

    around = support_client.get("/traces/r-15/surrounding/", params).content.decode()

    # Before, the window's first five lines (0-4) were shown and the moment was past them.
    assert re.findall(r"line (\d+)", around) == ["13", "14", "15", "16", "17"]
    assert 'id="window-cut-before"' in around and 'id="window-cut-after"' in around
    link = (
        re.search(r'id="window-cut-after".*?<a href="\?([^"]+)"', around, flags=re.S)
        .group(1)
        .replace("&amp;", "&")
    )
    assert parse_qs(link)["from_moment"] == ["1"]

    from_moment = support_client.get("/traces/r-15/surrounding/", parse_qs(link)).content.decode()

    # …and "go on" opens the window at the last line shown: it first, then what follows.
    lines = re.findall(r"line (\d+)", from_moment)
    assert lines == ["17", "18", "19"]


@pytest.mark.usefixtures("database_traces")
@pytest.mark.parametrize(
    "path, params",
    [("/users/u-busy/", {}), ("/traces/", {"user_id": "u-busy", "range": "30d"})],
)
def test_the_last_page_searchable_links_the_older_requests(support_client, store_events, path, params):
    now = timezone.now().replace(microsecond=0)
    total = 10_050  # more requests than a search pages to (200 pages of 50)
    store_events(
        [
            {"service": "gateway", "event": "open", "user_id": "u-busy", "correlation_id": f"r-{i:05}",
             "timestamp": (now - timedelta(seconds=i)).isoformat()}
            for i in range(total)
        ]
    )  # fmt: skip

    last = support_client.get(path, {**params, "page": 200}).content.decode()

    assert f"page 200 of {-(-total // 50)}" in last
    assert "page=201" not in last  # a page no search serves
    older = parse_qs(
        re.search(r'<a id="older-requests" href="\?([^"]+)"', last).group(1).replace("&amp;", "&")
    )
    assert "page" not in older and older["range"] == ["custom"]
    # Times as the form's datetime-local fields show them again (an offset or microseconds: an empty field).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", older["end"][0])
    next_part = support_client.get(path, older).content.decode()
    shown = re.findall(r"<code>(r-\d+)</code>", next_part)
    # It goes on where page 200 stopped (its last request again at most), none skipped.
    assert shown[0] in ("r-09999", "r-10000") and "r-10001" in shown
    assert f'value="{older["end"][0]}"' in next_part
    too_deep = support_client.get(path, {**params, "page": 400}).content.decode()
    assert "narrow the time range" in too_deep


def test_a_long_trail_lists_its_events_in_parts_and_every_link_finds_its_row(
    support_client, store_events, monkeypatch
):
    monkeypatch.setattr("apps.traces.views.EVENTS_PER_PART", 3)  # as if 5,000 events in parts of 1,000
    events = [
        {"service": "gateway", "type": "log", "message": f"line {i}", "correlation_id": "req-parts",
         "timestamp": at(i)}
        for i in range(7)
    ]  # fmt: skip
    events[6] |= {"level": "error", "message": "failure 6", "properties": {"where": "part 3"}}
    store_events(events)

    first = support_client.get("/traces/req-parts/").content.decode()
    last = support_client.get("/traces/req-parts/", {"part": 3}).content.decode()

    assert re.findall(r'<tr id="(ev-\d+)"', first) == ["ev-0", "ev-1", "ev-2"]
    assert re.findall(r'<tr id="(ev-\d+)"', last) == ["ev-6"]
    assert "events 1–3 of 7" in first and 'href="?part=2"' in first
    # The timeline draws the whole trail; a mark whose row is in another part links to that part.
    assert 'href="#ev-1"' in first and 'href="?part=2#ev-4"' in first and 'href="?part=3#ev-6"' in first
    errors = first[first.index('id="trail-errors"') : first.index("</ul>", first.index('id="trail-errors"'))]
    assert 'href="?part=3#ev-6"' in errors
    # A row's properties are those of its own event, whichever part it is in.
    assert last.count('<details class="props" data-index="0">') == 1
    assert '[{"properties": {"where": "part 3"}}]' in last
    assert support_client.get("/traces/req-parts/", {"part": 9}).status_code == 404
