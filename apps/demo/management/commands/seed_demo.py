"""`manage.py seed_demo [--seed N] [--days D] [--users U] [--end ISO] [--if-empty]`: demo traffic through
the real ingestion path, so a new portal has something to show."""

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.common.commands import OperatorCommand, require_task_broker
from apps.demo.selectors import raw_events_count, raw_events_exist
from apps.demo.services import demo_seed
from apps.demo.traffic import SERVICES, demo_plan
from apps.ingest.conform import EARLIEST_TIMESTAMP, FUTURE_TOLERANCE

DEFAULT_SEED = 2017  # the year of the lessons' first downloads table


class Command(OperatorCommand):
    help = (
        "Send SkyWatch-like demo traffic (gateway, search-api, download-server, download-worker, "
        "crop-forecast, ship-tracking) through conform and the pipeline. Deterministic for a --seed."
    )
    examples = (
        "manage.py seed_demo --if-empty            # make run: only into an empty database",
        "manage.py seed_demo --days 7 --users 200 --end 2026-12-01T00:00:00Z   # the same events each run",
    )
    # Set by handle: the command that stores the same window's traffic, and how many events were stored
    # before it began (what Ctrl-C says).
    rerun = ""
    stored_before: int | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"random seed: a seed and --end make the same events (default {DEFAULT_SEED})",
        )
        parser.add_argument(
            "--days", type=int, default=30, help="days of traffic ending at --end (default 30)"
        )
        parser.add_argument("--users", type=int, default=2000, help="how many users (default 2000)")
        parser.add_argument("--end", help="when the traffic ends, ISO-8601, not in the future (default now)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when events are already stored"
        )

    def handle(
        self, *args, seed: int, days: int, users: int, end: str | None, if_empty: bool, **options
    ) -> None:
        if not 1 <= days <= 365:
            raise CommandError("--days must be from 1 to 365")
        if not 1 <= users <= 100_000:
            raise CommandError("--users must be from 1 to 100000")
        ends = _end(end, days)
        if if_empty and raw_events_exist():
            self.stdout.write("seed_demo: events are already stored; nothing seeded (--if-empty)")
            return
        require_task_broker()
        began = time.monotonic()
        plan = demo_plan(seed=seed, days=days, users=users, end=ends)
        self.rerun = (
            f"manage.py seed_demo --seed {seed} --days {days} --users {users} --end {plan.end.isoformat()}"
        )
        self.stored_before = raw_events_count()
        with _quiet("celery.app.trace"):
            outcome = demo_seed(plan=plan)
        seconds = time.monotonic() - began
        if outcome.rejected:
            raise CommandError(f"{len(outcome.rejected)} demo items were refused, e.g. {outcome.rejected[0]}")
        services = ", ".join(name for name in SERVICES if name in outcome.services)
        self.stdout.write(
            f"seed_demo: {outcome.sent:,} events sent ({outcome.by_type['log']:,} log lines, "
            f"{outcome.by_type['span']:,} spans) by {len(outcome.users):,} users to {len(outcome.services)} "
            f"services ({services}) over {days} days to {plan.end:%Y-%m-%d %H:%M} UTC (seed {seed}): "
            f"{outcome.stored:,} stored, {outcome.duplicates:,} already there, {seconds:.1f} s"
        )
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            self.stdout.write(
                "  queued for the Celery workers: rollups and trace search fill in as they process it"
            )
        deploy = outcome.annotation
        if deploy is not None:
            state = "annotated" if outcome.annotation_state == "stored" else outcome.annotation_state
            self.stdout.write(
                f"  error spike on {plan.spike_day:%Y-%m-%d}; deploy at "
                f"{deploy.timestamp:%Y-%m-%d %H:%M} UTC ({state}): {deploy.text}"
            )

    def interrupted(self) -> str:
        if self.stored_before is None or raw_events_count() == self.stored_before:
            return "interrupted before any demo event was stored"
        # Without --end a bare rerun seeds a window ending later, and --if-empty would seed nothing.
        return (
            "interrupted: the demo traffic is partly stored; to store the rest of the same window (nothing "
            f"twice), run: {self.rerun}"
        )


def _end(text: str | None, days: int) -> datetime:
    """Return when the traffic ends; refuse an end the portal cannot hold the traffic for."""
    if text is None:
        return timezone.now()
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None or timezone.is_naive(moment):
        raise CommandError(f"--end {text!r}: give an ISO-8601 time with a zone, e.g. 2026-12-01T12:00:00Z")
    # Conform clamps a timestamp in the future to the received time (the whole demo at one instant) and
    # refuses one before 2000 as implausible (a partial seed): neither is demo traffic.
    if moment > timezone.now() + FUTURE_TOLERANCE:
        raise CommandError(f"--end {text!r} is in the future: the portal would store every event at now")
    try:
        starts = moment - timedelta(days=days)
    except OverflowError:
        starts = None
    if starts is None or starts < EARLIEST_TIMESTAMP:
        raise CommandError(
            f"--end {text!r} with --days {days} starts before {EARLIEST_TIMESTAMP:%Y-%m-%d}, "
            "which the portal refuses as implausible"
        )
    return moment


@contextmanager
def _quiet(name: str):
    """Raise a logger to WARNING for a while: in-process tasks log every chunk (hundreds of lines, each with
    its ids) at INFO, which would bury the summary; their warnings and errors still show."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
