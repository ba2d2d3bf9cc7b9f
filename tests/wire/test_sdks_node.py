"""The real Node.js SDKs, unmodified (tests/wire/node: posthog-node, @segment/analytics-node and the
OpenTelemetry JS OTLP/HTTP exporters, pinned by its package-lock.json), against the portal served by gunicorn
on loopback: everything they send is stored as they meant it, and they hear of no error.

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
CACHE = Path(os.environ.get("SKYWATCH_CACHE", REPO / ".cache"))
NODE_MODULES = CACHE / "node-sdks" / "node_modules"
# What each OTLP export of send.js holds, in each encoding: two spans, one log record.
SENT = (("traces", 2), ("logs", 1))


def run_node_sdks(portal_url: str, key: str, cid: str) -> dict:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "posthog-node").is_dir():
        pytest.fail(f"node and the Node SDKs in {NODE_MODULES} are needed: run scripts/ensure-test-tools.sh")
    done = subprocess.run(
        [node, str(DRIVER), portal_url, key, cid],
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
