"""The soak's report: a table for people, JSON for machines (and the short soak's test)."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import FaultRecord
from .reconcile import Reconciliation

# (key in the figures, label, what it means) in the order the table shows them.
_ROWS = (
    ("sent", "sent", "distinct events the clients sent"),
    ("resent", "re-sent on purpose", "events sent again with an acknowledged event_id"),
    ("accepted", "accepted", "distinct events the portal answered 2xx for"),
    ("refused", "refused", "refused item by item (4xx): not accepted"),
    (
        "unacknowledged",
        "never acknowledged",
        "given up by a client, or still pending when the flush timed out: not accepted",
    ),
    ("stored", "stored", "distinct events in PostgreSQL"),
    (
        "stored_unsent",
        "stored, never sent",
        "stored under a (service, event_id) no client sent: an extra copy",
    ),
    ("aggregated", "aggregated", "stored events counted in the rollups"),
    ("indexed", "indexed", "stored events with an Elasticsearch document <service>:<event_id>"),
    ("lost", "lost", "accepted but missing from PostgreSQL, the rollups or Elasticsearch"),
    ("duplicated", "duplicated", "extra rows or documents for one (service, event_id)"),
    ("double_counted", "double-counted", "rollup counts above the stored events (bucket by bucket)"),
    ("undercounted", "under-counted", "rollup counts below the stored events (bucket by bucket)"),
    ("claims", "claims", "committed SKIP LOCKED claims the ledger recorded (one per aggregated event)"),
    (
        "claimed_twice",
        "claimed twice",
        "events whose claim committed more than once (a chunk processed twice)",
    ),
    ("aggregated_unclaimed", "aggregated, unclaimed", "aggregated events the claim ledger never saw"),
    ("numeric_mismatches", "numeric mismatches", "hour and day buckets whose duration_ms count/sum is off"),
    (
        "users_mismatches",
        "unique-users mismatches",
        "hour and day buckets (and days of every event) whose unique users are off",
    ),
    ("names_mismatches", "event-name mismatches", "names the name catalogue misses or lists uncounted"),
)


@dataclass
class Report:
    mode: str
    config: dict[str, Any]
    figures: Reconciliation
    faults: list[FaultRecord]
    converged: bool
    time_to_converge: float | None  # seconds from the end of the last fault until all stores agreed
    converge_limit: float
    timings: dict[str, float] = field(default_factory=dict)
    traffic: dict[str, Any] = field(default_factory=dict)
    artifacts: str = ""

    @property
    def goal_met(self) -> bool:
        f = self.figures
        return (
            self.converged
            and self.time_to_converge is not None
            and self.time_to_converge <= self.converge_limit
            and f.agree
            and f.lost
            == f.duplicated
            == f.double_counted
            == f.undercounted
            == f.numeric_mismatches
            == f.users_mismatches
            == f.names_mismatches
            == 0
            and f.stored_unsent == 0  # no event stored again under an id of the portal's making
            and f.claimed_twice == f.aggregated_unclaimed == 0
            and len(f.claims_by_worker) >= 2  # two workers at once, or SKIP LOCKED was never contended
            # Every event sent was accepted: the clients' retries outlast every fault, so a refusal, a batch
            # given up or one still pending is a failure too (else "0 lost" could hold of a fraction).
            and f.accepted == f.sent > 0
            and f.refused == f.unacknowledged == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "goal_met": self.goal_met,
            "converged": self.converged,
            "time_to_converge_s": None if self.time_to_converge is None else round(self.time_to_converge, 1),
            "converge_limit_s": self.converge_limit,
            "figures": self.figures.as_dict(),
            "faults": [fault.as_dict() for fault in self.faults],
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            "traffic": self.traffic,
            "config": self.config,
            "artifacts": self.artifacts,
        }

    def table(self) -> str:
        f = self.figures.as_dict()
        limit = f"{self.converge_limit:.0f} s"
        ttc = "never" if self.time_to_converge is None else f"{self.time_to_converge:.1f} s"
        rows = ["| figure | value | meaning |", "|---|---:|---|"]
        rows += [f"| {label} | {f[key]} | {meaning} |" for key, label, meaning in _ROWS]
        rows.append(f"| time to converge | {ttc} | from the end of the last fault (goal ≤ {limit}) |")
        faults = [
            f"- {fault.kind}: {fault.started:.1f}–{fault.ended:.1f} s; "
            + ", ".join(f"{k}={v}" for k, v in fault.detail.items())
            for fault in self.faults
        ]
        traffic = self.traffic
        verdict = "MET" if self.goal_met else "NOT MET"
        return "\n".join(
            [
                f"Soak ({self.mode}): {traffic.get('services')} services, "
                f"{traffic.get('events_per_second', 0):.0f} events/s for {traffic.get('seconds', 0):.0f} s",
                f"Clients: {traffic.get('client_retries')} retried POSTs, "
                f"{traffic.get('duplicates_answered')} events answered as duplicates, "
                f"{traffic.get('client_failed_batches')} batches given up",
                "Faults, in turn:",
                *faults,
                "",
                *rows,
                "",
                "Claims by worker: "
                + (
                    ", ".join(f"{w} {n}" for w, n in self.figures.claims_by_worker.items()) or "none recorded"
                ),
                "Timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()),
                f"Goal (every event sent accepted; 0 lost, 0 duplicated, 0 double-counted, no event "
                f"claimed twice by the 2+ workers, converged ≤ {limit}): {verdict}",
            ]
        )

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
