"""Series as a table (buckets × series) for the page under a chart, and as CSV rows for the download."""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apps.metrics.selectors import Series

from .figures import series_label

MAX_ROWS = 400  # the page shows the latest buckets; the CSV has them all
# A spreadsheet runs a cell starting with one of these as a formula (some after trimming blanks, some
# after folding full-width forms to ASCII); a service's data must never do that.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", " ", "\u3000", "\uff1d", "\uff0b", "\uff0d", "\uff20")


@dataclass(frozen=True)
class SeriesTable:
    columns: list[str]
    # (bucket label, [(formatted value, its users page or None)]), oldest first: a point's users are a
    # link away from the table too, not only a click on the chart.
    rows: list[tuple[str, list[tuple[str, str | None]]]]
    totals: list[str] | None  # for additive measures only
    hidden_rows: int  # older buckets left out of the page


def bucket_label(moment: datetime, interval: str) -> str:
    """Return a bucket's start as the table shows it (UTC): dates for days and weeks, else minutes."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d}" if interval in ("day", "week") else f"{moment:%Y-%m-%d %H:%M}"


def format_value(value: float | None, *, decimals: bool = False) -> str:
    """Return a number for reading: thousands separated, two decimals when asked or needed; a gap as "—"."""
    if value is None:
        return "—"
    if float(value).is_integer() and not decimals:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def series_table(
    series: Sequence[Series],
    *,
    interval: str,
    additive: bool,
    decimals: bool = False,
    max_rows: int = MAX_ROWS,
    links: Sequence[Sequence[str] | None] = (),
) -> SeriesTable:
    """Return the buckets × series table of a chart (all series share the same buckets).

    `decimals` shows every value with two decimals (averages), so a column's figures line up. `links`: per
    series, each point's users page (drilldown.point_links), put on the cells that count someone.
    """
    buckets = [t for t, _ in series[0].points] if series else []
    by_series = [dict(s.points) for s in series]
    point_links = [dict(zip(buckets, found, strict=True)) if found else {} for found in links] or [
        {} for _ in series
    ]
    rows = [
        (
            bucket_label(t, interval),
            [
                (format_value(values.get(t), decimals=decimals), links_of.get(t) if values.get(t) else None)
                for values, links_of in zip(by_series, point_links, strict=True)
            ],
        )
        for t in buckets
    ]
    totals = None
    if additive and series:
        totals = [format_value(sum(v for _, v in s.points if v is not None)) for s in series]
    hidden = max(len(rows) - max_rows, 0)
    return SeriesTable(
        columns=[series_label(s) for s in series], rows=rows[hidden:], totals=totals, hidden_rows=hidden
    )


def spreadsheet_text(value: str) -> str:
    """Return text that a spreadsheet shows as text, never evaluates (OWASP CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_number(value: float | None) -> Any:
    if value is None:
        return ""
    return int(value) if float(value).is_integer() else value


def write_series_csv(series: Sequence[Series], out) -> None:
    """Write the series to `out` as CSV: a `bucket_start_utc` column, then one column per series."""
    writer = csv.writer(out)
    writer.writerow(["bucket_start_utc", *(spreadsheet_text(series_label(s)) for s in series)])
    buckets = [t for t, _ in series[0].points] if series else []
    by_series = [dict(s.points) for s in series]
    for t in buckets:
        stamp = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow([stamp, *(_csv_number(values.get(t)) for values in by_series)])
