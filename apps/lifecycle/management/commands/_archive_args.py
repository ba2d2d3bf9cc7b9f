"""Shared argument handling for the archive commands (archive_events, replay_archive)."""

import uuid
from datetime import date

from django.core.management.base import CommandError

from apps.lifecycle.archive_layout import Archive


def parse_day(value: str, option: str) -> date:
    """Return a UTC day from YYYY-MM-DD (the archive's unit is a whole day)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date, YYYY-MM-DD (a UTC day): got {value!r}") from None


def open_archive(target: str, *, must_exist: bool = False) -> Archive:
    """Return the archive at a directory or URL; say so plainly when its filesystem is not installed."""
    try:
        archive = Archive.at(target)
    except (ImportError, ValueError) as exc:  # e.g. s3:// without s3fs: fsspec names the package to install
        raise CommandError(f"{target}: {exc}") from None
    if must_exist and not archive.fs.isdir(archive.root):
        raise CommandError(f"{target}: no such archive directory")
    if archive.fs.exists(archive.root) and not archive.fs.isdir(archive.root):
        raise CommandError(f"{target}: not a directory")
    return archive


def writable_archive(target: str) -> Archive:
    """Return the archive at `target`, made if missing, once a file could be written there and removed:
    a target that refuses writes is refused at once, not once for every day."""
    archive = open_archive(target)
    probe = f"{archive.root}/.write-test-{uuid.uuid4().hex}"
    try:
        archive.fs.makedirs(archive.root, exist_ok=True)
        with archive.fs.open(probe, "wb") as handle:
            handle.write(b"")
        archive.fs.rm_file(probe)
    except OSError as exc:
        raise CommandError(f"{target}: cannot write there ({type(exc).__name__}: {exc})") from None
    return archive
