"""axe-core in headless Chromium on every page a person uses: no violation of impact serious or critical.

axe-core is pinned in tests/wire/node/package.json (installed by scripts/ensure-test-tools.sh into
.cache/node-sdks); without it this test fails, saying so: it is never skipped.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.accounts.services import personal_token_create
from apps.annotations.services import create_annotation
from apps.dashboards.services import chart_add, dashboard_create
from tests.conftest import chromium_page, sign_in
from tests.factories import make_api_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
AXE = (
    Path(os.environ.get("SKYWATCH_CACHE", REPO / ".cache"))
    / "node-sdks"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
BLOCKING = {"serious", "critical"}

# Every rule axe-core runs by default (WCAG 2.0-2.2 A and AA, best practices), none excluded, on the whole
# page: plotly's modebar and drawing included, since a person meets them as part of the page.
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({
      target: n.target.join(" "), summary: n.failureSummary, html: n.html.slice(0, 200),
    })),
  }));
}"""


@pytest.fixture
def axe_page():
    """A headless Debian Chromium page whose context lets axe-core's script in past the pages' CSP."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run `make test` (it installs the pinned axe-core)")
    with chromium_page(bypass_csp=True) as page:
        yield page


DRAWN = """() => Array.from(document.querySelectorAll(".plot-wrap .plot")).every(
  plot => plot.classList.contains("plot-missing") || plot.querySelector(".main-svg"))"""


def axe_violations(page) -> list[dict]:
    """Run axe-core on the page as it is drawn (every chart's figure first)."""
    page.wait_for_function(DRAWN, timeout=15_000)
    page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE)


# A retention row in every shade the heatmap uses (apps/dashboards/analyses.py: heat-none, heat-0 … heat-10),
# so the contrast check covers each, not only those today's data happens to hit.
EVERY_SHADE = """() => {
  const row = document.createElement("tr");
  ["heat-none", ...Array.from({length: 11}, (_, i) => `heat-${i}`)].forEach(shade => {
    const cell = document.createElement("td");
    cell.className = `num ${shade}`;
    cell.append("12", document.createElement("br"));
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = "50.0 %";
    cell.append(pct);
    row.append(cell);
  });
  document.querySelector(".retention-table tbody").append(row);
}"""


def recent(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


@pytest.fixture
def world(aggregate_events, make_person):
    """Events, trails with spans and log lines, an annotation, a dashboard (a trend and a funnel), a personal
    token and a service key; an admin (ada) and a support person (sam). Return the dashboard."""
    events = []
    for i in range(8):
        events.append(
            {
                "service": "gateway",
                "event": "search_made",
                "user_id": f"u{i}",
                "correlation_id": f"cid-{i}",
                "timestamp": recent(30 + i),
                "properties": {"plan": "pro"},
            }
        )
        if i % 2 == 0:
            events.append(
                {
                    "service": "tiles",
                    "event": "report_exported",
                    "user_id": f"u{i}",
                    "correlation_id": f"cid-{i}",
                    "timestamp": recent(29 + i),
                }
            )
        events.append(
            {
                "service": "tiles",
                "type": "log",
                "level": ("info", "warning", "error")[i % 3],
                "message": f"tile {i} served",
                "correlation_id": f"cid-{i}",
                "user_id": f"u{i}",
                "timestamp": recent(30 + i),
            }
        )
    events.append(
        {
            "service": "gateway",
            "type": "span",
            "event": "GET /search",
            "span_id": "0000000000000001",
            "duration_ms": 120.0,
            "correlation_id": "cid-0",
            "timestamp": recent(30),
        }
    )
    events.append(
        {
            "service": "tiles",
            "type": "span",
            "event": "render",
            "span_id": "0000000000000002",
            "parent_span_id": "0000000000000001",
            "duration_ms": 80.0,
            "level": "error",
            "correlation_id": "cid-0",
            "timestamp": recent(30),
        }
    )
    aggregate_events(events)
    admin = make_person("admin", "ada")
    make_person("support", "sam")
    create_annotation(service="gateway", text="deploy 1.2", timestamp=timezone.now() - timedelta(hours=31))
    board = dashboard_create(name="Product", owner=admin)
    chart_add(dashboard=board, title="Searches", query_string="event=search_made&range=7d&interval=day")
    chart_add(
        dashboard=board,
        title="Funnel",
        query_string="analysis=funnel&steps=search_made,report_exported&window=7200&range=7d",
    )
    personal_token_create(user=admin, label="script")
    make_api_key(service="gateway")
    return board


def test_axe_finds_nothing_serious_on_any_page(live_server, axe_page, world):
    page = axe_page
    found = {}

    def check(name: str, url: str | None = None, status: int | None = None) -> None:
        if url is not None:
            response = page.goto(live_server.url + url)
            if status is not None:
                assert response.status == status, url
        found[name] = axe_violations(page)

    check("login", "/login/")
    sign_in(page, live_server.url, "ada")
    check("overview")
    check(
        "explorer trends",
        "/dashboards/?event=search_made&event=report_exported&range=7d&interval=day&breakdown=service",
    )
    users_link = page.locator(".series-table td a").first.get_attribute("href")
    check(
        "explorer funnel",
        "/dashboards/?analysis=funnel&steps=search_made,report_exported&window=7200&range=7d",
    )
    check(
        "explorer retention",
        "/dashboards/?analysis=retention&start_event=search_made&return_event=report_exported&interval=day&range=7d",
    )
    page.evaluate(EVERY_SHADE)
    check("retention, every shade")
    check("explorer invalid", "/dashboards/?event=search_made&range=nope", status=400)
    check("dashboards list", "/dashboards/d/")
    check("dashboard detail", f"/dashboards/d/{world.slug}/")
    check("users behind a point", users_link)
    check("traces search", "/traces/")
    check("traces results", "/traces/?range=all&text=tile")
    check("paste box", "/traces/?q=served")
    check("trace detail", "/traces/cid-0/")
    surrounding = page.locator("a:has-text('surrounding logs')").first.get_attribute("href")
    check("surrounding logs", surrounding)
    check("user trail", "/users/u1/?range=all")
    check("tokens", "/account/tokens/")
    check("password", "/account/password/")
    check("keys", "/keys/")
    check("not found", "/no-such-page/", status=404)
    check("dashboard not found", "/dashboards/d/nope/", status=404)
    page.goto(live_server.url + "/")
    page.click("button:has-text('Sign out')")
    sign_in(page, live_server.url, "sam")
    check("support overview")
    check("forbidden", "/dashboards/", status=403)

    blocking = {name: [v for v in vs if v["impact"] in BLOCKING] for name, vs in found.items()}
    blocking = {name: vs for name, vs in blocking.items() if vs}
    assert blocking == {}, json.dumps(blocking, indent=1)


# The element that has the keyboard's focus: what it is, and whether anything shows where it is (an
# outline, or for a timeline link, its bar's thicker stroke).
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const shape = el.querySelector && el.querySelector("rect, circle");
  const rect = el.getBoundingClientRect();
  if (!el.dataset.tabOrder) {
    el.dataset.tabOrder = String(document.querySelectorAll("[data-tab-order]").length);
  }
  return {
    order: el.dataset.tabOrder,
    what: el.outerHTML.slice(0, 120),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    stroke: shape ? parseFloat(getComputedStyle(shape).strokeWidth) >= 3 : false,
    onScreen: rect.bottom > 0 && rect.right > 0 && rect.top < innerHeight + scrollY && rect.width > 0,
  };
}"""
REACHABLE = """() => Array.from(document.querySelectorAll(
  "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, summary, [tabindex='0']"
)).filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden"
  && !el.closest(".modebar")).length"""


def test_every_action_is_reached_by_tab_and_shows_its_focus(live_server, axe_page, world):
    page = axe_page
    sign_in(page, live_server.url, "ada")
    for url in (
        "/",
        "/dashboards/?event=search_made&range=7d&interval=day",
        f"/dashboards/d/{world.slug}/",
        "/traces/cid-0/",
        "/keys/",
        "/account/tokens/",
    ):
        page.goto(live_server.url + url)
        page.wait_for_function(DRAWN, timeout=15_000)
        reachable = page.evaluate(REACHABLE)
        seen, unseen = set(), []
        for _ in range(reachable + 40):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused is None or focused["order"] in seen:
                continue
            seen.add(focused["order"])
            if not (focused["outline"] or focused["stroke"]) or not focused["onScreen"]:
                unseen.append(focused)
        assert unseen == [], url
        assert len(seen) >= reachable, f"{url}: {len(seen)} of {reachable} controls reached by Tab"
        if url == "/":
            page.goto(live_server.url + url)
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.getAttribute('href')") == "#content"
            assert page.evaluate(FOCUSED)["onScreen"]
