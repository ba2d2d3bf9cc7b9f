"""`python -m soak [--short]`: run the soak, print the table, write the JSON; exit 1 if the goal is missed."""

import argparse
import signal
import sys
from pathlib import Path

from .config import PROFILES
from .instances import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short profile (the one inside make test)")
    parser.add_argument("--artifacts", type=Path, help="logs and report (default test-artifacts/soak-<mode>)")
    parser.add_argument("--json", type=Path, help="report path (default <artifacts>/report.json)")
    parser.add_argument(
        "--keep-services", action="store_true", help="leave the soak's own PostgreSQL/Redis/ES running"
    )
    args = parser.parse_args(argv)
    config = PROFILES["short" if args.short else "long"]
    artifacts = args.artifacts or REPO / "test-artifacts" / f"soak-{config.mode}"
    json_path = args.json or artifacts / "report.json"

    # A SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so the children and services are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from .runner import run

    def say(message: str) -> None:
        print(message, flush=True)

    report = run(config, artifacts=artifacts, keep_services=args.keep_services, say=say)
    report.write_json(json_path)
    print()
    print(report.table())
    print(f"\nReport: {json_path}")
    return 0 if report.goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
