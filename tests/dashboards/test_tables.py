"""tables.py: the table under a chart and the CSV rows."""

import csv
import io
from datetime import UTC, datetime, timedelta

from apps.dashboards.tables import format_value, series_table, spreadsheet_text, write_series_csv
from apps.metrics.selectors import Series

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def series(name, values):
    return Series(name, [(T0 + timedelta(days=i), v) for i, v in enumerate(values)])


def test_a_table_has_a_row_per_bucket_and_totals_for_additive_measures():
    table = series_table([series("a", [1000, 2]), series("b", [0, 3.5])], interval="day", additive=True)

    assert table.columns == ["a", "b"]
    assert table.rows == [
        ("2026-11-20", [("1,000", None), ("0", None)]),
        ("2026-11-21", [("2", None), ("3.50", None)]),
    ]
    assert table.totals == ["1,002", "3.50"]


def test_long_tables_keep_the_latest_rows():
    table = series_table([series("a", list(range(10)))], interval="hour", additive=False, max_rows=4)

    assert [label for label, _ in table.rows][0] == "2026-11-26 00:00"
    assert table.hidden_rows == 6
    assert table.totals is None


def test_numbers_for_reading():
    assert format_value(None) == "—"
    assert format_value(12345.0) == "12,345"
    assert format_value(2.0, decimals=True) == "2.00"
    assert format_value(1 / 3) == "0.33"


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_quoted_as_text():
    assert spreadsheet_text("=1+1") == "'=1+1"
    assert spreadsheet_text("-2") == "'-2"
    assert spreadsheet_text("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_text("free") == "free"
    # Spreadsheets that trim blanks or fold full-width forms would run these too.
    for cell in ("\n=1+1", " =1+1", "\u3000=1+1", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)"):
        assert spreadsheet_text(cell) == "'" + cell

    out = io.StringIO()
    write_series_csv([series("+cmd", [1, None])], out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["bucket_start_utc", "'+cmd"],
        ["2026-11-20T00:00:00Z", "1"],
        ["2026-11-21T00:00:00Z", ""],
    ]
