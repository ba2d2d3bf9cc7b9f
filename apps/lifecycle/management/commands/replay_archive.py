"""`manage.py replay_archive <directory> [--from --to --service]`: archived events back through conform and
into storage, a Celery task per row group (run here, one after the other, in the embedded mode)."""

import time
from datetime import date

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from apps.common.commands import OperatorCommand, Progress, quiet_loggers, require_task_broker, seconds
from apps.lifecycle.archive_layout import Archive
from apps.lifecycle.replay import ReplayOutcome, ReplayPlan, replay_plan, row_group_replay
from apps.lifecycle.tasks import replay_row_group

from ._archive_args import open_archive, parse_day

SHOWN_REASONS = 20


class Command(OperatorCommand):
    help = (
        "Replay archived events: conform each again and store those not already stored, keeping their "
        "received time, notes and whether they were counted in the rollups (so nothing is counted twice). "
        "Events of users purged after they were received are not stored. A file that cannot be read is "
        "named and skipped; the rest replays, and the exit status is 1. Running it again stores nothing "
        "twice, so an interrupted replay goes on by running it again."
    )
    examples = (
        "manage.py replay_archive /srv/skywatch-archive --from 2026-08-01 --to 2026-08-03 --service gateway",
        "manage.py replay_archive s3://bucket/skywatch --no-wait   # s3fs; the workers replay, this returns",
    )
    plan: ReplayPlan | None = None
    outcome: ReplayOutcome | None = None
    progress: "_Progress | None" = None
    queued = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="archive directory or URL")
        parser.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (UTC)")
        parser.add_argument("--to", dest="end", help="day after the last, YYYY-MM-DD (exclusive)")
        parser.add_argument("--service", action="append", default=[], help="only this service (repeatable)")
        parser.add_argument("--no-wait", action="store_true", help="queue the row groups and return")
        parser.add_argument(
            "--timeout", type=seconds, default=3600, help="seconds to wait for the workers (default 3600)"
        )

    def handle(
        self,
        *args,
        directory: str,
        start: str | None,
        end: str | None,
        service: list[str],
        no_wait: bool,
        timeout: float,
        verbosity: int,
        **options,
    ) -> None:
        first = parse_day(start, "--from") if start else None
        after = parse_day(end, "--to") if end else None
        if first and after and after <= first:
            raise CommandError("--to must be after --from")
        archive = open_archive(directory, must_exist=True)
        plan = replay_plan(archive=archive, start=first, end=after, services=service)
        _refuse_an_empty_choice(archive, plan, first=first, after=after, services=service)
        require_task_broker()
        self.plan = plan
        self.stdout.write(
            f"replaying {len(plan.files)} files of {archive.url}: {len(plan.units)} row groups, "
            f"{plan.rows:,} rows"
        )
        outcome = self.outcome = ReplayOutcome(unreadable=dict(plan.unreadable))
        began = time.monotonic()
        progress = self.progress = _Progress(self, plan)
        # Each row group logs what it stored: thousands of lines, which the summary below adds up.
        with quiet_loggers("apps.lifecycle.replay", "celery.app.trace", verbosity=verbosity):
            if settings.CELERY_TASK_ALWAYS_EAGER:
                for unit in plan.units:
                    outcome.add(row_group_replay(archive=archive, path=unit.path, row_group=unit.row_group))
                    progress.update(unit.rows)
            else:
                queued = [
                    (unit, replay_row_group.delay(archive.url, unit.path, unit.row_group))
                    for unit in plan.units
                ]
                self.queued = True
                if no_wait:
                    self.stdout.write(f"queued {len(queued)} row groups; each task logs what it stored")
                    return
                self._wait(queued, outcome, progress, timeout)
        progress.finish()
        self._summarise(plan, outcome, time.monotonic() - began)
        if outcome.unreadable:
            raise CommandError(
                f"{len(outcome.unreadable)} files or row groups could not be read (named above); "
                "everything else was replayed"
            )

    def interrupted(self) -> str:
        if self.plan is None or self.outcome is None or self.progress is None:
            return "interrupted before anything was replayed"
        done = (
            f"interrupted: {self.progress.units} of {len(self.plan.units)} row groups replayed "
            f"(at least {self.outcome.stored:,} events stored)"
        )
        if self.queued:
            return (
                f"{done}; the queued row groups keep running on the workers: run the same command again "
                "for the outcome (it stores nothing twice)"
            )
        return f"{done}; what is stored stays: run the same command again to go on (it stores nothing twice)"

    def _wait(self, queued, outcome: ReplayOutcome, progress: "_Progress", timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while queued:
            waiting = []
            for unit, result in queued:
                if not result.ready():
                    waiting.append((unit, result))
                    continue
                try:
                    outcome.add(ReplayOutcome.from_json(result.get()))
                except Exception as exc:  # the task failed: named like an unreadable file, the rest goes on
                    outcome.unreadable[f"{unit.path} (row group {unit.row_group})"] = (
                        f"task failed: {type(exc).__name__}: {exc}"[:500]
                    )
                result.forget()
                progress.update(unit.rows)
            queued = waiting
            if not queued:
                return
            if time.monotonic() > deadline:
                raise CommandError(
                    f"timed out with {len(queued)} row groups unfinished; the queued tasks keep running on "
                    "the workers (a second replay stores nothing twice)"
                )
            time.sleep(0.5)
            progress.tick()

    def _summarise(self, plan: ReplayPlan, outcome: ReplayOutcome, seconds: float) -> None:
        rate = f" ({outcome.rows_read / seconds:,.0f} rows/s)" if seconds > 0 and outcome.rows_read else ""
        self.stdout.write(
            f"replayed {len(plan.files)} files ({len(plan.units)} row groups) in {seconds:.1f} s: "
            f"{outcome.rows_read:,} rows read, {outcome.stored:,} stored, "
            f"{outcome.already_there:,} already there, {outcome.refused_rows:,} refused{rate}"
        )
        if outcome.stored:
            self.stdout.write(
                "  stored events go through the pipeline: indexed, and counted if they never were"
            )
        if outcome.assumed_counted:
            self.stdout.write(
                f"  {outcome.assumed_counted:,} stored as counted though archived as not counted: their day "
                "was counted after the archive read it, so they may have been (not counted twice; those "
                "days' counts may miss them)"
            )
        if outcome.purged:
            self.stdout.write(
                f"  {outcome.purged:,} not stored: their user was purged after they were received "
                "(purge_user; the audit log has it)"
            )
        if outcome.refused:
            self.stdout.write("  refused, by reason:")
            reasons = sorted(outcome.refused.items(), key=lambda item: (-item[1], item[0]))
            for reason, count in reasons[:SHOWN_REASONS]:
                self.stdout.write(f"    {count:>8,}  {reason}")
            if len(reasons) > SHOWN_REASONS:
                self.stdout.write(f"    … and {len(reasons) - SHOWN_REASONS} other reasons")
        for name, reason in sorted(outcome.unreadable.items()):
            self.stderr.write(f"  skipped, cannot be read: {name}: {reason}")


def _refuse_an_empty_choice(
    archive: Archive, plan: ReplayPlan, *, first: date | None, after: date | None, services: list[str]
) -> None:
    """Refuse, before anything is replayed, a choice that selects nothing: a directory with no archived day,
    a range with none, a service those days do not hold (a typo would replay nothing and succeed)."""
    if not plan.days:
        held = archive.days()
        if not held:
            raise CommandError(f"{archive.url}: no date=YYYY-MM-DD directories, so not an archive (or empty)")
        raise CommandError(
            f"the archive holds no day from {first or 'its first'} to {after or 'its last'}: it holds "
            f"{held[0]} to {held[-1]}"
        )
    unknown = sorted(set(services) - plan.services_held)
    if unknown:
        raise CommandError(
            f"no archived file of {', '.join(map(repr, unknown))} in those days; the services there: "
            f"{', '.join(sorted(plan.services_held)) or 'none'}"
        )


class _Progress:
    """Row groups and rows replayed, on the shared progress line (standard error)."""

    def __init__(self, command: OperatorCommand, plan: ReplayPlan) -> None:
        self.line = Progress(command.stderr, total=len(plan.units))
        self.total_rows = plan.rows
        self.units = self.rows = 0

    def update(self, rows: int) -> None:
        self.units += 1
        self.rows += rows
        self.tick()

    def tick(self) -> None:
        seconds = max(time.monotonic() - self.line.began, 1e-9)
        self.line.update(
            self.units,
            f"{self.units}/{self.line.total} row groups, {self.rows:,}/{self.total_rows:,} rows, "
            f"{self.rows / seconds:,.0f} rows/s",
        )

    def finish(self) -> None:
        self.line.finish()
