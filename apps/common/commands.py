"""What every operator command shares: help with examples, standard output kept for the command's result
(log lines and progress go to standard error), and one line instead of a traceback when it is interrupted
or a store it needs is down.
"""

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter, OutputWrapper
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from apps.common.errors import BackendUnavailable

# The status a shell gives a process ended by Ctrl-C (128 + SIGINT): a cron job or a script sees it stopped.
INTERRUPTED = 130
EXAMPLES = "examples:"


class _HelpFormatter(DjangoHelpFormatter):
    """Django's layout (own options first), with the examples kept one per line instead of re-wrapped."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class OperatorCommand(BaseCommand):
    """A management command an operator runs by hand or from cron.

    `examples` are shown at the end of --help. While the command runs, log lines that would reach standard
    output go to standard error, so standard output holds only what the command writes (a script may read
    it). Ctrl-C ends it with `interrupted()` on standard error and status 130; an unreachable database,
    search cluster or task broker with one line and status 1 (for the broker, with `left_after_failure()`).
    """

    examples: tuple[str, ...] = ()

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> argparse.ArgumentParser:
        if self.examples:
            kwargs.setdefault("epilog", "\n".join([EXAMPLES, *(f"  {line}" for line in self.examples)]))
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def execute(self, *args: Any, **options: Any) -> Any:
        with log_lines_to_stderr():
            try:
                return super().execute(*args, **options)
            except KeyboardInterrupt:
                raise CommandError(self.interrupted(), returncode=INTERRUPTED) from None
            except BackendUnavailable as exc:
                raise CommandError(f"the search cluster is unreachable: {exc}") from exc
            except (OperationalError, InterfaceError) as exc:
                raise CommandError(f"database error: {exc}".strip()) from exc
            except BrokerError as exc:  # lost after require_task_broker() found it
                raise CommandError(
                    f"the task broker is unreachable: {exc}; {self.left_after_failure()}"
                ) from exc

    def note(self, text: str) -> None:
        """Write a line for the person on standard error, uncoloured (standard output is the result)."""
        self.stderr.write(text, style_func=str)

    def interrupted(self) -> str:
        """Return the line said on Ctrl-C: what the run left done and how to go on."""
        return "interrupted before the end: run the command again"

    def left_after_failure(self) -> str:
        """Return what a run that failed half-way left done and how to go on."""
        return "run the command again once it is back"


def require_task_broker() -> None:
    """Raise CommandError when tasks go to a broker (not run in-process) and it, or the result store, does
    not answer: checked before a command that queues work changes anything, since half a run (a range's
    rollups reset, nothing queued to rebuild them) is worse than none."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
    except BrokerError as exc:
        raise CommandError(
            f"the task broker is unreachable ({connection.as_uri()}: {exc}); nothing was changed: run the "
            "command again once it is back"
        ) from exc
    client = getattr(current_app.backend, "client", None)  # Redis's result store: replay waits on results
    if client is None:
        return
    try:
        client.ping()
    except RedisError as exc:
        raise CommandError(
            f"the task result store is unreachable ({exc}); nothing was changed: run the command again once "
            "it is back"
        ) from exc


@contextmanager
def log_lines_to_stderr() -> Iterator[None]:
    """Point every log handler that writes to standard output at standard error while the block runs."""
    outputs = {id(sys.stdout), id(sys.__stdout__)}
    moved: list[tuple[logging.StreamHandler, TextIO]] = []
    for handler in _handlers():
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in outputs:
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


def _handlers() -> Iterable[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    seen: set[int] = set()
    for logger in loggers:
        for handler in logger.handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                yield handler


@contextmanager
def quiet_loggers(*names: str, verbosity: int) -> Iterator[None]:
    """Raise these loggers to WARNING for the block unless --verbosity is 2 or more: their INFO lines (one
    per chunk or row group) would bury the command's own summary; warnings and errors still show."""
    if verbosity >= 2:
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def seconds(text: str) -> float:
    """Parse a --timeout: a finite number of seconds, at least 0 (argparse's `type`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds: got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, at least 0: got {text!r}")
    return value


class Progress:
    """How far a long command is, on standard error: a line redrawn in place on a terminal; elsewhere (a log
    file, a pipe) the first line, then one at most every EVERY seconds, and the last, so a long run does not
    fill the log."""

    WIDTH = 30
    EVERY = 30.0  # seconds between lines where the output is not a terminal

    def __init__(self, stream: OutputWrapper, *, total: int) -> None:
        self.out, self.total = stream, total
        self.began = time.monotonic()
        self.tty = stream.isatty()
        self.shown: float | None = None  # when a line was last written (not on a terminal)
        self.shown_last = self.drawn = False

    def update(self, done: int, line: str) -> None:
        """Show `line`, which says how far the command is (`done` of the total), when it is due."""
        now = time.monotonic()
        if self.tty:
            filled = min(int(self.WIDTH * done / self.total), self.WIDTH) if self.total else self.WIDTH
            self.out.write(f"\r  [{'#' * filled}{'.' * (self.WIDTH - filled)}] {line}", ending="")
            self.out.flush()
            self.drawn = True
            return
        last = done >= self.total
        if self.shown is None or now - self.shown >= self.EVERY or (last and not self.shown_last):
            self.out.write(f"  {line}")
            self.shown, self.shown_last = now, last

    def finish(self) -> None:
        """End the line drawn in place, if any."""
        if self.drawn:
            self.out.write("")
            self.drawn = False
