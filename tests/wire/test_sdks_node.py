"""The real Node.js SDKs, unmodified (tests/wire/node: posthog-node, @segment/analytics-node and the
OpenTelemetry JS OTLP/HTTP exporters, and posthog-js in jsdom, pinned by its package-lock.json), against the
portal served by gunicorn on loopback: everything they send is stored as they meant it, and they hear of no
error.

scripts/ensure-test-tools.sh installs them (npm ci) into .cache/node-sdks; without node or them this test
fails, saying so: it is never skipped.
"""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from apps.ingest.models import RawEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("node") / "send.js"
BROWSER_DRIVER = Path(__file__).with_name("node") / "browser.js"
CACHE = Path(os.environ.get("SKYWATCH_CACHE", REPO / ".cache"))
NODE_MODULES = CACHE / "node-sdks" / "node_modules"
# What each OTLP export of send.js holds, in each encoding: two spans, one log record.
SENT = (("traces", 2), ("logs", 1))


def run_node_sdks(portal_url: str, key: str, cid: str, *args: str, driver: Path = DRIVER) -> dict:
    node = shutil.which("node")
    # The packages each driver needs: a cache installed before package-lock.json changed lacks them.
    if node is None or not all(
        (NODE_MODULES / name).is_dir() for name in ("posthog-node", "posthog-js", "jsdom")
    ):
        pytest.fail(f"node and the Node SDKs in {NODE_MODULES} are needed: run scripts/ensure-test-tools.sh")
    done = subprocess.run(
        [node, str(driver), portal_url, key, cid, *args],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_node_sdks_send_and_everything_is_stored_as_meant(portal, make_key):
    _, key = make_key(service="tiles-api", stage="prod")
    cid = f"node-{uuid.uuid4()}"

    report = run_node_sdks(portal.url, key, cid)

    assert report["posthog"]["errors"] == []
    assert (report["posthog"]["flag"], report["posthog"]["enabled"]) == ("undefined", "undefined")
    assert report["segment"] == {"errors": [], "statuses": [[200, "/v1/batch"]]}  # host=<portal>/segment
    exports = [[f"{signal}-{encoding}", n, 0, None] for encoding in ("proto", "json") for signal, n in SENT]
    assert sorted(report["otlp"]["results"]) == sorted(exports)
    stored = RawEvent.objects.filter(service="tiles-api", stage="prod")
    by_event = {}
    for event in stored:
        by_event.setdefault(event.event, []).append(event)

    [basket] = by_event["basket_filled"]
    assert (basket.user_id, basket.correlation_id) == ("user-42", cid)
    assert basket.properties["name"] == "Zoë ✓ 日本 😀"
    assert basket.properties["$lib"] == "posthog-node"
    assert by_event["$identify"][0].properties["$set"] == {"plan": "pro"}
    [ai] = by_event["$ai_generation"]  # captureAi: /posthog/i/v0/ai/batch/
    assert (ai.user_id, ai.correlation_id) == ("user-42", cid)

    [paid] = by_event["Invoice Paid"]
    [identify] = by_event["identify"]
    assert (paid.user_id, paid.correlation_id, paid.properties["amount"]) == ("user-7", cid, 12)
    assert (identify.user_id, identify.correlation_id) == ("user-7", cid)

    for encoding in ("proto", "json"):
        trace_id = report["otlp"][encoding]
        trail = {e.event: e for e in stored.filter(correlation_id=trace_id)}
        assert set(trail) == {f"GET /tiles {encoding}", "render", "log"}
        assert trail[f"GET /tiles {encoding}"].user_id == "user-9"
        assert (trail["render"].type, trail["render"].level, trail["render"].message) == (
            "span",
            "error",
            "renderer crashed",
        )
        line = trail["log"]
        assert (line.level, line.message) == ("warning", "cut \ufffd")
        assert float(line.properties["huge"]) == 1e21
        assert float(line.properties["max"]) == 1.7976931348623157e308


@pytest.mark.parametrize("config_from", ["config.js", "config"])
def test_posthog_js_in_a_page_loads_no_flags_without_an_error_and_its_events_are_stored(
    portal, make_key, config_from
):
    """posthog-js loads its remote config at start-up, as the script /array/<key>/config.js (posthog-js
    before 1.451, in a page that runs it) or as JSON from /array/<key>/config (later ones, or a page whose
    CSP refuses the script): a 404 there was an error in every visitor's console. It asks /flags/ when the
    user is identified, and sends its events gzip'd to /e/."""
    _, key = make_key(service="shop-web", stage="prod")
    cid = f"web-{uuid.uuid4()}"
    mode = "script" if config_from == "config.js" else "json"

    report = run_node_sdks(portal.url, key, cid, mode, driver=BROWSER_DRIVER)

    assert report["logged"] == []
    assert (report["flag"], report["enabled"]) == ("undefined", "undefined")  # as for a flag PostHog lacks
    assert report["compression"] == "gzip-js"  # chosen from the config's supportedCompression
    configs = [path for path, _status in report["requests"] if path.startswith("/posthog/array/")]
    assert configs == [f"/posthog/array/{key}/{config_from}"]  # the script, when run, is enough
    if mode == "script":
        assert report["scriptConfig"]["config"]["hasFeatureFlags"] is False
        assert report["scriptConfig"]["siteApps"] == []
    else:
        assert report["scriptConfig"] is None
    assert ["/posthog/flags/", 200] in report["requests"]
    assert {status for _path, status in report["requests"]} == {200}
    stored = {e.event: e for e in RawEvent.objects.filter(service="shop-web", stage="prod")}
    assert set(stored) == {"$identify", "basket_filled", "$feature_flag_called", "checkout_done"}
    assert stored["$identify"].properties["$set"] == {"plan": "pro"}
    assert (stored["basket_filled"].user_id, stored["basket_filled"].correlation_id) == ("user-42", cid)
    assert stored["basket_filled"].properties["name"] == "Zoë ✓"
    assert stored["basket_filled"].properties["$lib"] == "web"
