"""The short soak inside `make test`: every fault once, on the soak's own PostgreSQL, Redis and
Elasticsearch (never the session's), then the reconciliation of the clients' 202s with every store."""

import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

FAULTS = {
    "worker SIGKILL mid-chunk",
    "Redis restart",
    "Redis FLUSHALL",
    "Elasticsearch stopped",
    "PostgreSQL restart",
}


def run_short_soak(artifacts_dir) -> tuple[dict, str]:
    """Run `python -m soak --short` (its own process: it sets up Django for its own database)."""
    out_dir = artifacts_dir / "soak-short"
    report_path = out_dir / "report.json"
    report_path.unlink(missing_ok=True)
    log_path = artifacts_dir / "soak-short.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "soak", "--short", "--artifacts", str(out_dir)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            process.wait(timeout=420)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # the soak stops its processes and services on SIGTERM
            process.wait(timeout=120)
    output = log_path.read_text(errors="replace")
    if not report_path.exists():
        pytest.fail(f"the soak wrote no report (exit {process.returncode}):\n{output[-6000:]}", pytrace=False)
    return json.loads(report_path.read_text()), output


def test_short_soak_loses_duplicates_double_counts_and_claims_twice_nothing(artifacts_dir):
    report, output = run_short_soak(artifacts_dir)
    figures = report["figures"]
    faults = {fault["kind"]: fault for fault in report["faults"]}
    summary = output[output.find("Soak (short)") :]

    assert set(faults) == FAULTS, summary
    assert faults["worker SIGKILL mid-chunk"]["chunk_events_claimed"] > 0  # really killed mid-chunk
    assert faults["Redis FLUSHALL"]["tasks_queued_then_lost"] > 0  # the flush really lost tasks
    assert figures["accepted"] > 500 and figures["resent"] > 0, summary
    # Every event sent was accepted (none refused, given up or left pending), and nothing else was stored.
    assert figures["accepted"] == figures["sent"] == figures["stored"], summary
    assert (figures["refused"], figures["unacknowledged"], figures["stored_unsent"]) == (0, 0, 0), summary
    lost_duplicated_double = (
        figures["lost"],
        figures["duplicated"],
        figures["double_counted"],
        figures["undercounted"],
        figures["numeric_mismatches"],
    )
    assert lost_duplicated_double == (0, 0, 0, 0, 0), summary
    # SKIP LOCKED under two workers at once: every aggregated event's claim committed exactly once.
    assert len(figures["claims_by_worker"]) >= 2, summary
    assert (figures["claimed_twice"], figures["aggregated_unclaimed"]) == (0, 0), summary
    assert figures["claims"] == figures["aggregated"], summary
    assert report["converged"], summary
    assert report["time_to_converge_s"] <= report["converge_limit_s"]
    assert report["goal_met"] and figures["indexed"] == figures["aggregated"] == figures["stored"]
