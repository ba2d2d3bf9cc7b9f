"""The times a reader may ask about: far enough from the calendar's ends that every step a read path
takes (aligning to a week, adding a bucket, going back a period, ± an hour) stays on the calendar.

Nothing is stored before 2000 (conform refuses it) or far in the future (clamped), so nothing is lost.
"""

from datetime import UTC, datetime

from django import forms

QUERY_TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
QUERY_TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "is out of range: use a time between 1900-01-01 and 9000-01-01 (UTC)"


def within_query_bounds(moment: datetime) -> bool:
    """Return whether an aware time lies where read paths can compute with it."""
    return QUERY_TIME_MIN <= moment <= QUERY_TIME_MAX


class BoundedDateTimeField(forms.DateTimeField):
    """A form's date and time (read as UTC when naive), refused outside the query bounds."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            aware = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        except OverflowError:  # year 1 with a positive offset
            aware = None
        if aware is None or not within_query_bounds(aware):
            raise forms.ValidationError(f"This time {OUT_OF_RANGE}.", code="out_of_range")
        return moment
