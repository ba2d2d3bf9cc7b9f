"""Shared argument handling for the archive commands (archive_events, replay_archive)."""

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
